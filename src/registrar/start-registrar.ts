/**
 * The registrar role: agent-facing HTTP on `[registrar] ip:port` (8890, plain, as upstream) and the
 * admin API over mTLS on `ip:tls_port` (8891). Both serve `GET /version`; registration and
 * activation are served on both, the admin routes on the mTLS port only (`routes.ts`), and only
 * when it verifies client certificates (not with `trusted_client_ca = all`). So are `GET /metrics`
 * (`registrar-metrics.ts`) and `GET /health`: 503 while the database cannot serve or either
 * listener is not serving (`http/ops/role-health.ts`).
 *
 * Trust anchors for EK, IAK and IDevID certificates come from `[tenant] tpm_cert_store`, as in
 * upstream's registrar, re-read every 30 s; its default follows `KEYLIME_DIR`
 * (`$KEYLIME_DIR/tpm_cert_store`).
 *
 * @module
 */
import { type RegistrarConfig, loadTenantConfig, resolveTpmCertStore } from '../config/index.ts'
import { BodyReadLimiter } from '../http/body-read-limiter.ts'
import { createApp } from '../http/create-app.ts'
import { serverBodyCeiling } from '../http/limit-body.ts'
import { addVersionRoutes } from '../http/add-version-routes.ts'
import { addOpsRoutes } from '../http/add-ops-routes.ts'
import { enforceAccess, identifyByClientCert } from '../http/access/enforce-access.ts'
import { roleHealth } from '../http/ops/role-health.ts'
import { adminListenerTls, type RoleContext, type RoleHandle, stopServers } from '../http/role.ts'
import { type RunningServer, startServer } from '../http/serve.ts'
import { CertStoreCache } from './cert-store-cache.ts'
import { RegistrarMetrics } from './registrar-metrics.ts'
import { REGISTRAR_ACCESS } from './access-table.ts'
import { addRegistrarRoutes } from './routes.ts'
import { type CertStoreSource, RegistrarService } from './service.ts'
import type { WriteBatcherOptions } from './write-batcher.ts'

/** The whole registration body must arrive within this time once its read starts. */
const BODY_READ_TIMEOUT_MS = 10_000

/** Upstream's default `[tenant] tpm_cert_store` (resolved against `KEYLIME_DIR`). */
const DEFAULT_TPM_CERT_STORE = '/var/lib/keylime/tpm_cert_store'

/** Optional overrides of {@link startRegistrar} (tests, embedding). */
export interface StartRegistrarOptions {
  /** Trust store directory; default `[tenant] tpm_cert_store`. */
  tpmCertStore?: string
  /** A ready trust store source (takes precedence over `tpmCertStore`). */
  certStore?: CertStoreSource
  /** Clock for certificate validity. */
  now?: () => Date
  /** Group commit bounds of the registrar's writes (benchmarks, tests). */
  batching?: WriteBatcherOptions
}

function tenantCertStore(ctx: RoleContext<RegistrarConfig>): string {
  try {
    return loadTenantConfig({ warn: () => {} }).tenant.tpm_cert_store
  } catch (e) {
    const store = resolveTpmCertStore(DEFAULT_TPM_CERT_STORE)
    ctx.log.warn('tenant.conf unreadable; using the default tpm_cert_store', {
      error: e instanceof Error ? e.message : String(e),
      tpm_cert_store: store,
    })
    return store
  }
}

/** A started registrar. */
export interface RegistrarHandle extends RoleHandle {
  /** Its counters, as `/metrics` shows them. */
  metrics: RegistrarMetrics
}

/** Starts the registrar's two listeners. */
export async function startRegistrar(
  ctx: RoleContext<RegistrarConfig>,
  options: StartRegistrarOptions = {},
): Promise<RegistrarHandle> {
  const { config, tls, log } = ctx
  const r = config.registrar
  if (!tls.serverKey || !tls.serverCert) {
    throw new Error('registrar: no server certificate or key loaded (check [registrar] tls_dir)')
  }
  const certStore =
    options.certStore ?? new CertStoreCache(options.tpmCertStore ?? tenantCertStore(ctx))
  const service = new RegistrarService({
    database: ctx.database,
    log,
    certStore,
    tpmIdentity: r.tpm_identity,
    malformedCertAction: r.malformed_cert_action,
    now: options.now,
    batching: options.batching,
  })
  const metrics = new RegistrarMetrics()
  // Both listeners share one body-read bound; registration bodies are a few KB, so a slow one is
  // cut off after BODY_READ_TIMEOUT_MS.
  const appOptions = {
    log,
    maxUploadSize: r.max_upload_size,
    bodyReads: new BodyReadLimiter({ maxConcurrent: r.max_concurrent_uploads }),
    bodyReadTimeoutMs: BODY_READ_TIMEOUT_MS,
    requestMetrics: metrics.requests,
  }
  const maxRequestBodySize = serverBodyCeiling(r.max_upload_size)
  const servers: RunningServer[] = []
  const agentApp = createApp(appOptions)
  addVersionRoutes(agentApp)
  addRegistrarRoutes(agentApp, service, 'http', metrics)
  // The TLS listener serves the whole API, each route's action deciding who may call it
  // (upstream's `simple` authorization provider). With `trusted_client_ca = all` no client
  // certificate is verified, so nobody is an admin there: only the public actions are served.
  const adminApp = createApp(appOptions)
  adminApp.use('*', enforceAccess(REGISTRAR_ACCESS, identifyByClientCert))
  addVersionRoutes(adminApp)
  addRegistrarRoutes(adminApp, service, 'mtls', metrics)
  addOpsRoutes(adminApp, {
    metricsText: () => metrics.render(),
    health: () => roleHealth(ctx.database, servers),
  })
  if (!tls.verifyPeer) {
    log.warn(
      'trusted_client_ca = all: no client certificate can be verified; the registrar admin API (list, show, delete) is refused on both ports',
    )
  }

  servers.push(
    startServer({
      name: 'registrar',
      fetch: agentApp.fetch,
      hostname: r.ip,
      port: r.port,
      maxRequestBodySize,
      log,
    }),
  )
  try {
    servers.push(
      startServer({
        name: 'registrar (tls)',
        fetch: adminApp.fetch,
        hostname: r.ip,
        port: r.tls_port,
        tls: adminListenerTls(tls),
        maxRequestBodySize,
        log,
      }),
    )
  } catch (err) {
    await stopServers(servers, 0)
    throw err
  }
  return { servers, metrics, stop: (drainMs) => stopServers(servers, drainMs) }
}
