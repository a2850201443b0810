/**
 * The verifier role: the REST API over mTLS on `[verifier] ip:port` (8881) and the pull-mode
 * attestation loop (`attestation-loop.ts`) with its leases, batched writes, revocation notices
 * and metrics.
 *
 * @module
 */
import type { VerifierConfig } from '../config/index.ts'
import type { KeylimeDatabase } from '../db/index.ts'
import { addVersionRoutes } from '../http/add-version-routes.ts'
import { BodyReadLimiter } from '../http/body-read-limiter.ts'
import { ByteBudget } from '../http/byte-budget.ts'
import { createApp } from '../http/create-app.ts'
import { serverBodyCeiling } from '../http/limit-body.ts'
import { asAdmin, asAgent, enforceAccess } from '../http/access/enforce-access.ts'
import { echoRequestId } from '../http/echo-request-id.ts'
import { identifyRequest } from '../http/access/identify-request.ts'
import { type RoleHealth, roleHealth, withReason } from '../http/ops/role-health.ts'
import { adminListenerTls, type RoleContext, type RoleHandle, stopServers } from '../http/role.ts'
import { type RunningServer, startServer } from '../http/serve.ts'
import { AgentConnections, sessionFileFor } from '../http/agent-client/agent-connections.ts'
import { AttestationLoop } from './loop/attestation-loop.ts'
import { type VerifierSettings, verifierSettings } from './loop/verifier-settings.ts'
import { CheckPool } from './checks/check-pool.ts'
import { SeverityRules } from './checks/failure.ts'
import { joinHeapGovernor } from './ops/heap-governor.ts'
import { VerifierMetrics } from './ops/metrics.ts'
import { RevocationNotifier } from './notify/revocation-notifier.ts'
import { VERIFIER_ACCESS } from './api/access-table.ts'
import { addVerifierRoutes } from './api/routes.ts'
import { VerifierService } from './api/service.ts'
import { stateName } from '../protocol/agent-states.ts'
import { VerifierStore } from './store/store.ts'
import { RoundPolicyCache } from './loop/round-policies.ts'
import { AttestationsApi } from './push/attestations-api.ts'
import { PushLiveness } from './push/liveness.ts'
import { type VerifyDeps, verifyAttestation } from './push/verify-attestation.ts'
import { EarIssuer } from './results/ear-issuer.ts'
import { EarKeyRing, earKeyDir, ensureEarKey } from './results/ear-keys.ts'
import { addSessionRoutes } from './push/sessions/session-routes.ts'
import { startSessions, type VerifierSessions } from './push/sessions/start-sessions.ts'

/** Options beyond the configuration (tests, benchmarks, embedding). */
export interface StartVerifierOptions {
  /**
   * This process's lease identity. Default: `<host>/<ip>:<port>` for a fixed port, so a process
   * restarted on the same address takes its agents back at once; random for port 0.
   */
  instanceId?: string
  /** Rounds in flight at most (default 512). */
  maxInFlight?: number
  /** Batched write period in ms (default 200). */
  flushMs?: number
  /** Lease length in ms (default max(3 × quote_interval, 6 s)). */
  leaseMs?: number
  /** New agent connections per second at most (default 500; see `agent-connections.ts`). */
  connectsPerSecond?: number
  /** Check workers (default: one per core; 0 = every check on the main thread). */
  checkWorkers?: number
  /** Check worker entry (tests: a worker that misbehaves); default `check-worker.ts`. */
  checkWorkerEntry?: string
  /** Webhook fetch (tests). */
  fetch?: typeof fetch
  /** Pushed evidence left this long without a verdict is verified again (ms; default 60 s). */
  pushStalledMs?: number
}

/** A started verifier with its internals exposed for tests and benchmarks. */
export interface VerifierHandle extends RoleHandle {
  /** The hono app as an admin calls it in-process (for `app.request()` tests). */
  app: ReturnType<typeof createApp>
  /** The hono app as push agent `agentId` calls it in-process (tests; see `asAgent`). */
  asAgent(agentId: string): ReturnType<typeof createApp>
  loop: AttestationLoop
  service: VerifierService
  store: VerifierStore
  metrics: VerifierMetrics
  /** The check workers. */
  checks: CheckPool
  /** The kept-alive agent connections. */
  agents: AgentConnections
  instanceId: string
  /** Push-mode authentication: token checks and session operations. */
  sessions: VerifierSessions
}

/**
 * `/health`'s verdict: `ok`, or `unhealthy` (HTTP 503) with the reason while the database cannot
 * serve, the listener is not serving, or the loop's state writes keep failing.
 */
function verdict(
  database: KeylimeDatabase,
  servers: readonly RunningServer[],
  loop: AttestationLoop,
): RoleHealth {
  const failing = loop.writeFailure
  if (failing === undefined) return roleHealth(database, servers)
  const since = new Date(failing.since).toISOString()
  const reason = `${failing.what} (failing since ${since}): ${failing.error}`
  return withReason(roleHealth(database, servers), reason)
}

type Ctx = RoleContext<VerifierConfig>

/** The severity rules and check options of `[verifier]`, and the started check workers. */
async function startChecks(ctx: Ctx, options: StartVerifierOptions) {
  const v = ctx.config.verifier
  const labels = v.severity_labels.map(String)
  const severityPolicy = (v.severity_policy as { event_id: string; severity_label: string }[]) ?? []
  const rules = new SeverityRules(labels, severityPolicy)
  const check = {
    rules,
    mbPolicyName: v.measured_boot_policy_name,
    mbEvaluate: v.measured_boot_evaluate,
    ignoreTomtouErrors: v.ignore_tomtou_errors,
  }
  const checks = await CheckPool.start({
    size: options.checkWorkers,
    entry: options.checkWorkerEntry,
    check,
    labels,
    severityPolicy,
    log: ctx.log,
  })
  return { rules, check, checks }
}

/**
 * The verifier's clients towards agents and webhooks: kept-alive agent connections for the loop
 * and the revocation notifier. Answers (quotes, V, notices) share one budget of bytes.
 */
function agentClients(
  ctx: Ctx,
  settings: VerifierSettings,
  store: VerifierStore,
  options: StartVerifierOptions,
  webhookEar: ((agentId: string) => Promise<string | undefined>) | undefined,
) {
  const { config, tls, log } = ctx
  const v = config.verifier
  const answerBudget = new ByteBudget(
    Math.max(v.max_agent_response_buffer, v.max_agent_response_size),
  )
  const agents = new AgentConnections({
    cert: tls.clientCert,
    key: tls.clientKey,
    ca: tls.ca,
    verifyPeer: tls.verifyPeer,
    timeoutMs: settings.requestTimeoutMs,
    maxResponseBytes: v.max_agent_response_size,
    budget: answerBudget,
    idleMs: settings.agentIdleMs,
    connectsPerSecond: options.connectsPerSecond,
    sessionFile: sessionFileFor(ctx.keylimeDir, settings.instanceId),
  })
  const notifier = new RevocationNotifier({
    channels: config.revocations.enabled_revocation_notifications.map(String),
    webhookUrl: config.revocations.webhook_url,
    maxRetries: settings.maxRetries,
    retryInterval: settings.retryIntervalMs / 1000,
    exponentialBackoff: settings.exponentialBackoff,
    agents,
    log,
    fetch: options.fetch,
    webhookEar,
    targets: async (subject) =>
      (await store.listAgents(settings.verifierId)).flatMap((r) =>
        r.agent_id === subject || !r.ip || !r.port
          ? []
          : [
              {
                agentId: r.agent_id,
                ip: r.ip,
                port: r.port,
                mtlsCert:
                  settings.agentMtls && r.mtls_cert && r.mtls_cert !== 'disabled'
                    ? r.mtls_cert
                    : null,
                version: r.supported_version ?? '2.6',
              },
            ],
      ),
  })
  return { notifier, agents }
}

/** The number of held agents per state name, for `/metrics`. */
function agentsByState(loop: AttestationLoop): Map<string, number> {
  const byState = new Map<string, number>()
  for (const r of loop.records.values()) {
    const n = stateName(r.state)
    byState.set(n, (byState.get(n) ?? 0) + 1)
  }
  return byState
}

/** The hono app: version routes, the verifier's routes, `/metrics` and `/health`. */
function verifierApp(
  ctx: Ctx,
  parts: {
    service: VerifierService
    loop: AttestationLoop
    metrics: VerifierMetrics
    notifier: RevocationNotifier
    servers: readonly RunningServer[]
    instanceId: string
    auth: VerifierSessions
  },
) {
  const { config, tls, log } = ctx
  const { service, loop, metrics, notifier, servers, instanceId, auth } = parts
  const v = config.verifier
  const app = createApp({
    log,
    maxUploadSize: v.max_upload_size,
    bodyReads: new BodyReadLimiter({ maxConcurrent: v.max_concurrent_uploads }),
    requestMetrics: metrics.requests,
  })
  if (!tls.verifyPeer) {
    log.warn(
      'trusted_client_ca = all: no client certificate can be verified; only the public actions (version, verify identity and evidence) are served',
    )
  }
  // Each route's action decides who may call it (upstream's `simple` authorization provider).
  // A bearer token makes an agent request; otherwise the client certificate decides.
  app.use('*', echoRequestId())
  app.use('*', enforceAccess(VERIFIER_ACCESS, identifyRequest(auth.tokens)))
  addVersionRoutes(app)
  // push-mode authentication (push/sessions/): POST /v3/sessions, PATCH /v3/sessions/:id
  addSessionRoutes(app, auth.sessions)
  addVerifierRoutes(app, service, {
    metricsText: () =>
      metrics.render({
        agentsByState: agentsByState(loop),
        inFlight: loop.scheduler.inFlight,
        scheduled: loop.scheduler.scheduled,
        lagSeconds: loop.scheduler.currentLag() / 1000,
        leasesHeld: loop.records.size,
        liveInstances: loop.liveInstances,
        revocations: notifier.counts,
      }),
    health: () => ({
      ...verdict(ctx.database, servers, loop),
      agents: loop.records.size,
      lag: Math.round(loop.scheduler.currentLag()) / 1000,
      in_flight: loop.scheduler.inFlight,
      instance_id: instanceId,
      live_instances: loop.liveInstances,
    }),
  })
  return app
}

/** The verifier's listener on `[verifier] ip:port`, mTLS. */
function listen(ctx: Ctx, app: ReturnType<typeof createApp>): RunningServer {
  const v = ctx.config.verifier
  return startServer({
    name: 'verifier',
    fetch: app.fetch,
    hostname: v.ip,
    port: v.port,
    tls: adminListenerTls(ctx.tls),
    maxRequestBodySize: serverBodyCeiling(v.max_upload_size),
    log: ctx.log,
  })
}

/** The EAR signer over `ear_keys/`, creating the first key when there is none (docs/ear.md). */
async function startEarIssuer(ctx: Ctx): Promise<EarIssuer> {
  const dir = earKeyDir(ctx.keylimeDir)
  if (await ensureEarKey(dir)) ctx.log.info('created the EAR signing key', { dir })
  const keys = new EarKeyRing(dir, (files) =>
    ctx.log.warn('EAR signing key files not loaded (unreadable or not P-256 keys)', {
      dir,
      files: files.join(','),
    }),
  )
  await keys.current()
  return new EarIssuer(keys)
}

/** Starts the verifier's listener and loop. */
export async function startVerifier(
  ctx: Ctx,
  options: StartVerifierOptions = {},
): Promise<VerifierHandle> {
  const { config, tls, log } = ctx
  const v = config.verifier
  if (!tls.serverKey || !tls.serverCert) {
    throw new Error('verifier: no server certificate or key loaded (check [verifier] tls_dir)')
  }
  const settings = verifierSettings(v, options)
  const { instanceId, leaseMs } = settings
  const store = new VerifierStore(ctx.database.db)
  const auth = await startSessions(config, ctx.keylimeDir, store, log)
  const metrics = new VerifierMetrics()
  const ear = await startEarIssuer(ctx)
  const { rules, check, checks } = await startChecks(ctx, options)
  // the notifier is built before the service that reads agents for it: bound once both exist
  let service: VerifierService | undefined
  const webhookEar = config.revocations.webhook_ear
    ? (id: string) => service?.ear.noticeEar(id) ?? Promise.resolve(undefined)
    : undefined
  const { notifier, agents } = agentClients(ctx, settings, store, options, webhookEar)
  const quoteInterval = settings.quoteIntervalMs / 1000
  const verifyDeps: VerifyDeps = {
    store,
    checks,
    policies: new RoundPolicyCache({ store, log }),
    rules,
    notifier,
    log,
    autoRecover: v.auto_recover_attestation_failures,
  }
  const attestations = new AttestationsApi({
    ...verifyDeps,
    quoteInterval,
    challengeLifetime: v.challenge_lifetime,
    verificationTimeout: v.verification_timeout,
  })
  const pushLiveness = new PushLiveness({
    store,
    notifier,
    rules,
    log,
    quoteInterval,
    reverify: (id, index) => verifyAttestation(verifyDeps, id, index),
    stalledMs: options.pushStalledMs,
  })
  const loop = new AttestationLoop({
    pushLiveness,
    store,
    agents,
    notifier,
    metrics,
    log,
    rules,
    check,
    checks,
    settings,
    dbHealth: ctx.database.health,
  })
  service = new VerifierService({
    store,
    loop,
    checks,
    verifierId: settings.verifierId,
    verifierIp: v.ip,
    verifierPort: v.port,
    instanceId,
    quoteInterval: settings.quoteIntervalMs / 1000,
    leaseMs,
    enableAgentMtls: settings.agentMtls && v.mode !== 'push',
    requireAllowListSignatures: v.require_allow_list_signatures,
    ear,
    attestations,
    mode: v.mode,
  })
  const servers: RunningServer[] = []
  const app = verifierApp(ctx, { service, loop, metrics, notifier, servers, instanceId, auth })
  servers.push(listen(ctx, app))
  try {
    await loop.start()
  } catch (err) {
    auth.stop()
    agents.close()
    checks.close()
    await stopServers(servers, 0)
    throw err
  }
  const leaveGovernor = joinHeapGovernor()
  log.info('verifier attestation loop started', {
    instance_id: instanceId,
    agents: loop.records.size,
    lease_ms: leaseMs,
  })
  return {
    servers,
    app: asAdmin(app),
    asAgent: (agentId) => asAgent(app, agentId),
    loop,
    service,
    store,
    metrics,
    checks,
    agents,
    instanceId,
    sessions: auth,
    async stop(drainMs) {
      leaveGovernor()
      auth.stop()
      await loop.stop(drainMs)
      await Promise.race([attestations.idle(), Bun.sleep(Math.min(drainMs, 2000))])
      await notifier.drain(Math.min(drainMs, 2000))
      agents.close()
      checks.close()
      await stopServers(servers, drainMs)
    },
  }
}
