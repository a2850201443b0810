/**
 * The verifier role: the REST API over mTLS on `[verifier] ip:port` (8881).
 *
 * @module
 */
import type { VerifierConfig } from '../config/index.ts'
import { versionPrefixes } from '../http/api-version.ts'
import { createApp } from '../http/create-app.ts'
import { addVersionRoutes } from '../http/add-version-routes.ts'
import { envelopeResponse } from '../http/envelope.ts'
import { type RoleContext, type RoleHandle, stopServers } from '../http/role.ts'
import { startServer } from '../http/serve.ts'

/** Starts the verifier's listener. */
export async function startVerifier(ctx: RoleContext<VerifierConfig>): Promise<RoleHandle> {
  const { config, tls, log } = ctx
  const v = config.verifier
  const app = createApp({ log, maxUploadSize: v.max_upload_size })
  addVersionRoutes(app)
  for (const prefix of versionPrefixes(2)) {
    // upstream: GET /v2[.x]/ → 405 "Not Implemented: Use /agents/ interface instead"
    app.get(prefix, () => envelopeResponse(405, 'Not Implemented: Use /agents/ interface instead'))
  }
  if (!tls.serverKey || !tls.serverCert) {
    throw new Error('verifier: no server certificate or key loaded (check [verifier] tls_dir)')
  }
  const servers = [
    startServer({
      name: 'verifier',
      fetch: app.fetch,
      hostname: v.ip,
      port: v.port,
      tls: { key: tls.serverKey, cert: tls.serverCert, ca: tls.ca, requestCert: tls.verifyPeer },
      maxRequestBodySize: v.max_upload_size + 65_536,
      log,
    }),
  ]
  return { servers, stop: (drainMs) => stopServers(servers, drainMs) }
}
