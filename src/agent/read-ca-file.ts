/**
 * Reads a CA certificate file the configuration names (`verifier_tls_ca_cert`,
 * `registrar_tls_ca_cert`), with a message that says where the certificate comes from.
 *
 * @module
 */

import { existsSync, readFileSync } from 'node:fs'
import { AgentError } from './errors.ts'

/**
 * The PEM text of `path`.
 *
 * @throws {AgentError} `ERR_AGENT_CONFIG` naming `option` when the file is missing.
 */
export function readCaFile(option: string, path: string): string {
  if (!existsSync(path)) {
    throw new AgentError(
      'ERR_AGENT_CONFIG',
      `option ${option}: ${path} does not exist (copy the verifier's cv_ca/cacert.crt there)`,
    )
  }
  return readFileSync(path, 'utf8')
}
