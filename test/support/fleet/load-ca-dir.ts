/**
 * Reads the TLS material the fleet needs from a keylime CA directory (`$KEYLIME_DIR/cv_ca`, file
 * names as upstream `ca_util.py`): `cacert.crt` (the CA agents trust for client certificates) and
 * the `client-cert.crt` / `client-private.pem` pair used to talk to the verifier and to agents.
 *
 * @module
 */

import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decryptPrivateKeyPem } from '../../../src/ca/rsa-keys.ts'
import type { ClientTls } from './enroll-agent.ts'
import { FleetError } from './errors.ts'

/** The CA certificate and client TLS material of a CA directory. */
export interface CaDirMaterial {
  /** `cacert.crt` (PEM). */
  caCertPem: string
  /** Client TLS (CA, `client-cert.crt`, decrypted `client-private.pem`). */
  client: ClientTls
}

/**
 * Loads `cacert.crt`, `client-cert.crt` and `client-private.pem` from `dir`.
 *
 * @throws {FleetError} `ERR_FLEET_CONFIG` if a file is missing or the key does not decrypt.
 */
export async function loadCaDir(dir: string, clientKeyPassword?: string): Promise<CaDirMaterial> {
  const read = async (name: string): Promise<string> => {
    try {
      return await readFile(join(dir, name), 'utf8')
    } catch (cause) {
      throw new FleetError('ERR_FLEET_CONFIG', `cannot read ${join(dir, name)}`, { cause })
    }
  }
  const caCertPem = await read('cacert.crt')
  const cert = await read('client-cert.crt')
  const keyPem = await read('client-private.pem')
  let key: string
  try {
    key = decryptPrivateKeyPem(keyPem, clientKeyPassword || undefined, 'client-private.pem')
  } catch (cause) {
    throw new FleetError('ERR_FLEET_CONFIG', 'client-private.pem does not decrypt', { cause })
  }
  return { caCertPem, client: { ca: caCertPem, cert, key } }
}
