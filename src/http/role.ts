/**
 * The contract between the control-plane runtime (`src/cli/run-control-plane.ts`) and a role
 * (registrar, verifier): the runtime hands each role its configuration, database and TLS material;
 * the role starts its listeners and background work and gives back a handle to stop them.
 *
 * @module
 */
import type { TlsMaterial } from '../ca/index.ts'
import type { KeylimeDatabase } from '../db/index.ts'
import type { Logger } from '../log/logger.ts'
import type { RunningServer, ServerTls } from './serve.ts'

/** What every role receives at start. */
export interface RoleContext<C> {
  /** The role's loaded configuration. */
  config: C
  /** `KEYLIME_DIR`. */
  keylimeDir: string
  /** The shared database (one instance per location in this process). */
  database: KeylimeDatabase
  /** Server and client TLS material of the role, private keys decrypted. */
  tls: TlsMaterial
  log: Logger
}

/** A started role. */
export interface RoleHandle {
  /** The role's listeners. */
  servers: RunningServer[]
  /**
   * Stops accepting work, drains in-flight requests and background work for at most `drainMs`,
   * then closes the listeners. Does not close the database (the runtime owns it).
   */
  stop(drainMs: number): Promise<void>
}

/** Stops every server of a role in parallel. */
export async function stopServers(servers: RunningServer[], drainMs: number): Promise<void> {
  await Promise.all(servers.map((s) => s.stop(drainMs)))
}

/**
 * The TLS settings of a role's admin listener: its server certificate, client certificates from
 * `trusted_client_ca` required (unless `all`), checked against the client CRLs.
 */
export function adminListenerTls(tls: TlsMaterial): ServerTls {
  if (tls.serverKey === undefined || tls.serverCert === undefined) {
    throw new Error('no server certificate or key loaded (check tls_dir)')
  }
  return {
    key: tls.serverKey,
    cert: tls.serverCert,
    ca: tls.ca,
    requestCert: tls.verifyPeer,
    crl: tls.crl,
  }
}
