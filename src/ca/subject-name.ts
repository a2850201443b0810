/**
 * Certificate subjects as upstream builds them (`keylime/ca_impl_openssl.py` `mk_name`): the RDN
 * order C, CN, ST, L, O, OU, with the values from `ca.conf`.
 *
 * @module
 */
import { Name } from '@peculiar/x509'
import type { CaSettings } from './ca-settings.ts'
import { CaError } from './errors.ts'

/** Longest common name accepted (RFC 5280 ub-common-name). */
const MAX_CN = 64

/**
 * Builds the subject `C=…, CN=commonName, ST=…, L=…, O=…, OU=…`.
 *
 * @throws {CaError} `ERR_CA_INVALID_INPUT` when the common name is empty or too long.
 */
export function buildSubjectName(settings: CaSettings, commonName: string): Name {
  if (commonName.length === 0 || commonName.length > MAX_CN) {
    throw new CaError('ERR_CA_INVALID_INPUT', `common name must be 1..${MAX_CN} characters`)
  }
  return new Name([
    { C: [settings.cert_country] },
    { CN: [commonName] },
    { ST: [settings.cert_state] },
    { L: [settings.cert_locality] },
    { O: [settings.cert_organization] },
    { OU: [settings.cert_org_unit] },
  ])
}
