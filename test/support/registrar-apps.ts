/**
 * The registrar's two apps (agent-facing and admin) over one service on a database the caller
 * opened, without listeners or TLS, for suites that call them with `app.request()`. The trust
 * store is empty (EK certificates are assessed as `no_store`).
 *
 * @module
 */
import type { KeylimeDatabase } from '../../src/db/index.ts'
import { createApp, type KeylimeApp } from '../../src/http/create-app.ts'
import { getLogger } from '../../src/log/logger.ts'
import { addRegistrarRoutes } from '../../src/registrar/routes.ts'
import { RegistrarService } from '../../src/registrar/service.ts'

/** The agent-facing (`http`) and admin (`mtls`) routes of one registrar service. */
export interface RegistrarApps {
  http: KeylimeApp
  admin: KeylimeApp
  service: RegistrarService
}

/** Builds the registrar's apps on `database`. */
export function registrarApps(database: KeylimeDatabase): RegistrarApps {
  const log = getLogger('registrar')
  const service = new RegistrarService({
    database,
    log,
    certStore: { get: () => new Error('no store') },
  })
  const http = createApp({ log })
  addRegistrarRoutes(http, service, 'http')
  const admin = createApp({ log })
  addRegistrarRoutes(admin, service, 'mtls')
  return { http, admin, service }
}
