/**
 * The verifier side of the tenant: `cvstatus`, `status`, `cvlist`, `bulkinfo`, `delete`,
 * `reactivate`, plus the enrolment polling and `PUT /stop` that `add` uses (upstream
 * `Tenant.do_cv*`, keylime-api.md §1.4, §4.1).
 *
 * Push agents (API 3.0) are read through the same v2 routes: the verifier's status carries
 * `attestation_status` (PASS/FAIL/TIMEOUT/PENDING), `attestation_period` and
 * `maximum_attestation_interval`, printed as the verifier sends them. `reactivate` of a push agent
 * goes through `PATCH /v3.0/agents/:id` (see {@link reactivate}).
 *
 * @module
 */
import { PeerBadResponse } from '../http/peer-errors.ts'
import { agentStateName } from '../protocol/agent-states.ts'
import { TenantError } from './errors.ts'
import { type CommandResult, fetchRegistrarAgent } from './registrar-commands.ts'
import { retryTime } from '../protocol/retry-time.ts'
import { type TenantContext, V3_VERSION } from './tenant-context.ts'
import { pyJson } from './tenant-output.ts'

/** The verifier's status object of one agent (`GET /agents/{id}` results). */
export type AgentStatus = Record<string, unknown>

/** Printed for a push agent's `operational_state` by `bulkinfo` (upstream's text). */
export const PUSH_STATE_TEXT = 'Not applicable (Push Mode)'

function agentPath(ctx: TenantContext): string {
  return `agents/${encodeURIComponent(ctx.opts.agentUuid)}`
}

/**
 * Whether a verifier status describes a push agent, by upstream's rule
 * (`agent_util.is_push_mode_agent`): never polled (`operational_state` null) or no contact
 * address (`ip` and `port` both null). The status has no explicit mode field.
 */
export function isPushAgent(status: AgentStatus): boolean {
  const none = (v: unknown) => v === null || v === undefined
  return none(status.operational_state) || (none(status.ip) && none(status.port))
}

/**
 * The status as upstream's tenant prints it: the numeric `operational_state` by its name; with
 * `--push-model` (`dropForPush`) the field is removed. A null state stays null (`cvstatus`) or
 * reads {@link PUSH_STATE_TEXT} (`bulkinfo`, `nullText`).
 */
export function withStateName(
  status: AgentStatus,
  dropForPush: boolean,
  nullText: string | null = null,
): AgentStatus {
  const s = { ...status }
  if (dropForPush) delete s.operational_state
  else if (s.operational_state === null || s.operational_state === undefined)
    s.operational_state = nullText
  else s.operational_state = agentStateName(s.operational_state)
  return s
}

/**
 * `GET /agents/{id}` on the verifier; undefined when the verifier does not know the agent.
 *
 * @throws {TenantError} for answers other than 200 and 404.
 */
export async function fetchVerifierStatus(ctx: TenantContext): Promise<AgentStatus | undefined> {
  const res = await ctx.call('verifier', 'GET', agentPath(ctx))
  if (res.status === 404) return undefined
  if (res.status !== 200)
    throw ctx.httpError('verifier', res, `reading the status of agent ${ctx.opts.agentUuid}`)
  return (res.results ?? {}) as AgentStatus
}

function notOnVerifier(ctx: TenantContext): TenantError {
  return new TenantError(
    'ERR_TENANT_NOT_FOUND',
    `Agent ${ctx.opts.agentUuid} does not exist on ${ctx.label('verifier')}`,
    {
      httpStatus: 404,
      hint: 'check the UUID (-u) with -c cvlist, and the verifier address (-v/-vp)',
    },
  )
}

/** `-c cvstatus`. */
async function cvstatus(ctx: TenantContext): Promise<CommandResult> {
  const status = await fetchVerifierStatus(ctx)
  if (status === undefined) throw notOnVerifier(ctx)
  const results = { [ctx.opts.agentUuid]: withStateName(status, ctx.opts.pushModel) }
  return {
    results,
    text: `Agent Info from ${ctx.label('verifier')}:\n${pyJson(results)}`,
  }
}

/**
 * `-c status`: the registrar record, then the verifier status. An agent that is registered but
 * not enrolled reports the registrar's `Registered` state (upstream's intent; its code raises).
 */
async function status(ctx: TenantContext): Promise<CommandResult> {
  const agent = await fetchRegistrarAgent(ctx)
  const uuid = ctx.opts.agentUuid
  const cv = await fetchVerifierStatus(ctx)
  if (cv === undefined) {
    ctx.out.info(`Agent ${uuid} is registered but not enrolled on ${ctx.label('verifier')}`)
    const results = { [uuid]: { ...agent, operational_state: 'Registered' } }
    return { results, text: `Agent Info from ${ctx.label('registrar')}:\n${pyJson(results)}` }
  }
  const results = { [uuid]: withStateName(cv, ctx.opts.pushModel) }
  return { results, text: `Agent Info from ${ctx.label('verifier')}:\n${pyJson(results)}` }
}

/** `-c cvlist`: `GET /agents/?verifier=<id>`; ids as the server lists them (`[[id], …]`). */
async function cvlist(ctx: TenantContext): Promise<CommandResult> {
  const id = encodeURIComponent(ctx.opts.verifierId ?? '')
  const res = await ctx.call('verifier', 'GET', `agents/?verifier=${id}`)
  if (res.status !== 200) throw ctx.httpError('verifier', res, 'listing agents')
  const r = (res.results ?? {}) as { uuids?: unknown }
  const results = { uuids: Array.isArray(r.uuids) ? r.uuids : [] }
  return {
    results,
    text: `Agent list from ${ctx.label('verifier')} retrieved:\n${pyJson(results)}`,
  }
}

/** `-c bulkinfo`: `GET /agents/?bulk=True&verifier=<id>` with state names. */
async function bulkinfo(ctx: TenantContext): Promise<CommandResult> {
  const id = encodeURIComponent(ctx.opts.verifierId ?? '')
  const res = await ctx.call('verifier', 'GET', `agents/?bulk=True&verifier=${id}`)
  if (res.status !== 200) throw ctx.httpError('verifier', res, 'reading bulk agent status')
  const results: Record<string, AgentStatus> = {}
  for (const [uuid, st] of Object.entries((res.results ?? {}) as Record<string, AgentStatus>)) {
    results[uuid] = withStateName(st, false, PUSH_STATE_TEXT)
  }
  return { results, text: `Bulk Agent Info:\n${pyJson(results)}` }
}

/**
 * Points the context at the verifier that owns the agent (its `verifier_ip`/`verifier_port`), as
 * upstream does unless `-nvc`. Returns the agent's status, undefined when it is not on the
 * verifier.
 */
async function followOwner(ctx: TenantContext): Promise<AgentStatus | undefined> {
  const st = await fetchVerifierStatus(ctx)
  if (st === undefined) return undefined
  const ip = st.verifier_ip
  const port = Number(st.verifier_port)
  if (typeof ip === 'string' && ip !== '' && Number.isInteger(port) && port > 0) {
    if (ip !== ctx.verifierIp || port !== ctx.verifierPort) {
      ctx.out.info(`Agent ${ctx.opts.agentUuid} is handled by verifier ${ip}:${port}`)
      ctx.verifierIp = ip
      ctx.verifierPort = port
    }
  }
  return st
}

/**
 * Deletes the agent from the verifier: `DELETE`, and on 202 polls until the verifier answers 404
 * (progress on stderr, `max_retries` tries with upstream's backoff).
 *
 * @param tolerateMissing treat "not on the verifier" as done (`update`)
 * @throws {TenantError} `ERR_TENANT_NOT_FOUND` if absent and not tolerated; `ERR_TENANT_TIMEOUT`
 *   when the verifier has not finished after `max_retries` polls.
 */
export async function deleteFromVerifier(
  ctx: TenantContext,
  tolerateMissing: boolean,
): Promise<'deleted' | 'absent'> {
  const uuid = ctx.opts.agentUuid
  if (ctx.opts.verifierCheck && (await followOwner(ctx)) === undefined) {
    if (tolerateMissing) return 'absent'
    throw notOnVerifier(ctx)
  }
  const res = await ctx.call('verifier', 'DELETE', agentPath(ctx))
  if (res.status === 404) {
    if (tolerateMissing) return 'absent'
    throw notOnVerifier(ctx)
  }
  if (res.status === 200) return 'deleted'
  if (res.status !== 202) throw ctx.httpError('verifier', res, `deleting agent ${uuid}`)
  const max = ctx.cfg.max_retries
  for (let tries = 1; ; tries++) {
    if ((await fetchVerifierStatus(ctx)) === undefined) return 'deleted'
    if (tries >= max) {
      throw new TenantError(
        'ERR_TENANT_TIMEOUT',
        `Agent ${uuid} was not deleted from ${ctx.label('verifier')} after ${tries} tries`,
        { hint: 'the verifier finishes the deletion after its current poll; check its log' },
      )
    }
    const wait = retryTime(ctx.cfg.exponential_backoff, ctx.cfg.retry_interval, tries)
    ctx.out.progress(
      `Agent ${uuid} still not deleted from ${ctx.label('verifier')} at try ${tries}/${max}, trying again in ${wait} seconds...`,
    )
    await Bun.sleep(wait * 1000)
  }
}

/** `-c delete`. */
async function deleteCommand(ctx: TenantContext): Promise<CommandResult> {
  await deleteFromVerifier(ctx, false)
  const uuid = ctx.opts.agentUuid
  return {
    results: { agent_id: uuid, deleted: true },
    text: `Agent ${uuid} deleted from ${ctx.label('verifier')}`,
  }
}

/** The JSON:API body that re-enables a push agent's attestations (v3 agent resource). */
export function acceptAttestationsBody(agentId: string): Record<string, unknown> {
  return { data: { type: 'agent', id: agentId, attributes: { accept_attestations: true } } }
}

/**
 * `PATCH /v3.0/agents/{id}` with `accept_attestations: true`. Returns false when the verifier
 * has no working v3 admin API (404/405/501, or upstream 7.14's 500 with an HTML body), so the
 * caller can use the v2 route instead.
 */
async function patchAcceptAttestations(ctx: TenantContext): Promise<boolean> {
  const uuid = ctx.opts.agentUuid
  let status: number
  try {
    const res = await ctx.callV3('PATCH', agentPath(ctx), acceptAttestationsBody(uuid))
    status = res.status
    if (status === 200 || status === 204) return true
    if (status !== 404 && status !== 405 && status !== 500 && status !== 501)
      throw ctx.httpError('verifier', res, `re-enabling attestations of push agent ${uuid}`)
  } catch (e) {
    if (!(e instanceof PeerBadResponse)) throw e
    status = 0
  }
  ctx.out.warn(
    `${ctx.label('verifier')} has no usable v${V3_VERSION} agent API (PATCH answered ${status || 'a non-JSON body'}); using PUT /reactivate`,
  )
  return false
}

/**
 * `-c reactivate` on the owning verifier. A push agent (by its status, {@link isPushAgent}, or
 * `--push-model` when `-nvc` skips the status) gets `PATCH /v3.0/agents/{id}`
 * `{"data":{"type":"agent","id","attributes":{"accept_attestations":true}}}`; a verifier
 * without that route (upstream 7.14 answers 500) gets upstream's `PUT /v2.x/agents/{id}/reactivate`,
 * which re-enables a push agent there too. Pull agents always use the PUT.
 */
async function reactivate(ctx: TenantContext): Promise<CommandResult> {
  const uuid = ctx.opts.agentUuid
  let push = ctx.opts.pushModel
  if (ctx.opts.verifierCheck) {
    const st = await followOwner(ctx)
    if (st === undefined) throw notOnVerifier(ctx)
    push = push || isPushAgent(st)
  }
  let route = `PATCH /v${V3_VERSION}/${agentPath(ctx)}`
  if (!push || !(await patchAcceptAttestations(ctx))) {
    const res = await ctx.call('verifier', 'PUT', `${agentPath(ctx)}/reactivate`, {})
    if (res.status === 404) throw notOnVerifier(ctx)
    if (res.status !== 200) throw ctx.httpError('verifier', res, `reactivating agent ${uuid}`)
    route = `PUT /v${await ctx.version('verifier')}/${agentPath(ctx)}/reactivate`
  }
  return {
    results: { agent_id: uuid, reactivated: true, push_model: push, request: route },
    text: `Agent ${uuid} re-activated on ${ctx.label('verifier')}`,
  }
}

/**
 * `PUT /agents/{id}/stop` (used when `--verify` fails; there is no `stop` command upstream).
 *
 * @throws {TenantError} when the verifier refuses.
 */
export async function stopOnVerifier(ctx: TenantContext): Promise<void> {
  const res = await ctx.call('verifier', 'PUT', `${agentPath(ctx)}/stop`, {})
  if (res.status !== 200)
    throw ctx.httpError('verifier', res, `stopping agent ${ctx.opts.agentUuid}`)
  ctx.out.info(`Agent ${ctx.opts.agentUuid} stopped on ${ctx.label('verifier')}`)
}

/**
 * Polls `GET /agents/{id}` until the verifier answers 200 (`add`, upstream `do_cvadd`).
 *
 * @throws {TenantError} `ERR_TENANT_TIMEOUT` after `max_retries` tries.
 */
export async function waitUntilAdded(ctx: TenantContext): Promise<AgentStatus> {
  const uuid = ctx.opts.agentUuid
  const max = ctx.cfg.max_retries
  for (let tries = 0; ;) {
    const st = await fetchVerifierStatus(ctx)
    if (st !== undefined) {
      ctx.out.info(`Agent ${uuid} added to ${ctx.label('verifier')} after ${tries} tries`)
      return st
    }
    tries++
    if (tries >= max) {
      throw new TenantError(
        'ERR_TENANT_TIMEOUT',
        `Agent ${uuid} still not added to ${ctx.label('verifier')} after ${tries} tries`,
        { hint: 'check the verifier log' },
      )
    }
    const wait = retryTime(ctx.cfg.exponential_backoff, ctx.cfg.retry_interval, tries)
    ctx.out.progress(
      `Agent ${uuid} still not added to ${ctx.label('verifier')} at try ${tries}/${max}, trying again in ${wait} seconds...`,
    )
    await Bun.sleep(wait * 1000)
  }
}

/** Runs one of the verifier status/list/lifecycle commands. */
export async function runVerifierCommand(
  ctx: TenantContext,
  command: 'cvstatus' | 'status' | 'cvlist' | 'bulkinfo' | 'delete' | 'reactivate',
): Promise<CommandResult> {
  switch (command) {
    case 'cvstatus':
      return cvstatus(ctx)
    case 'status':
      return status(ctx)
    case 'cvlist':
      return cvlist(ctx)
    case 'bulkinfo':
      return bulkinfo(ctx)
    case 'delete':
      return deleteCommand(ctx)
    case 'reactivate':
      return reactivate(ctx)
  }
}
