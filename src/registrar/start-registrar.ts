/**
 * The registrar role: agent-facing HTTP on `[registrar] ip:port` (8890, plain, as upstream) and the
 * admin API over mTLS on `ip:tls_port` (8891).
 *
 * @module
 */
import type { RegistrarConfig } from '../config/index.ts'
import { createApp } from '../http/create-app.ts'
import { addVersionRoutes } from '../http/add-version-routes.ts'
import { type RoleContext, type RoleHandle, stopServers } from '../http/role.ts'
import { startServer } from '../http/serve.ts'

/** Starts the registrar's two listeners. */
export async function startRegistrar(ctx: RoleContext<RegistrarConfig>): Promise<RoleHandle> {
  const { config, tls, log } = ctx
  const r = config.registrar
  const agentApp = createApp({ log })
  addVersionRoutes(agentApp)
  const adminApp = createApp({ log })
  addVersionRoutes(adminApp)

  if (!tls.serverKey || !tls.serverCert) {
    throw new Error('registrar: no server certificate or key loaded (check [registrar] tls_dir)')
  }
  const servers = [
    startServer({ name: 'registrar', fetch: agentApp.fetch, hostname: r.ip, port: r.port, log }),
  ]
  try {
    servers.push(
      startServer({
        name: 'registrar (tls)',
        fetch: adminApp.fetch,
        hostname: r.ip,
        port: r.tls_port,
        tls: {
          key: tls.serverKey,
          cert: tls.serverCert,
          ca: tls.ca,
          requestCert: tls.verifyPeer,
        },
        log,
      }),
    )
  } catch (err) {
    await stopServers(servers, 0)
    throw err
  }
  return { servers, stop: (drainMs) => stopServers(servers, drainMs) }
}
