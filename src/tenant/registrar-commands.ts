/**
 * The registrar side of the tenant: `reglist`, `regstatus`, `regdelete`, and the agent lookup
 * `add` starts with (upstream `keylime/registrar_client.py`, `Tenant.do_reg*`).
 *
 * @module
 */
import { TenantError } from './errors.ts'
import type { TenantContext } from './tenant-context.ts'
import { pyJson } from './tenant-output.ts'

/** What a command hands back to the runner: results for `--json`, text for humans. */
export interface CommandResult {
  results: unknown
  text?: string
}

/** The registrar's view of an agent (`GET /agents/{id}` results; our extra fields pass through). */
export interface RegistrarAgent {
  aik_tpm: string
  ek_tpm: string
  ekcert?: string | null
  mtls_cert?: string | null
  ip?: string | null
  port?: number | string | null
  regcount?: number
  provider_keys?: { ekcert?: string | null; [k: string]: unknown }
  [field: string]: unknown
}

/**
 * Reads an agent from the registrar.
 *
 * @throws {TenantError} `ERR_TENANT_NOT_FOUND` when the registrar does not know the agent (or it
 *   is not activated), `ERR_TENANT_REJECTED` on other answers or a body without `aik_tpm`.
 */
export async function fetchRegistrarAgent(ctx: TenantContext): Promise<RegistrarAgent> {
  const uuid = ctx.opts.agentUuid
  const res = await ctx.call('registrar', 'GET', `agents/${encodeURIComponent(uuid)}`)
  if (res.status === 404) {
    throw new TenantError(
      'ERR_TENANT_NOT_FOUND',
      `Agent ${uuid} does not exist on ${ctx.label('registrar')}`,
      {
        httpStatus: 404,
        hint: 'check the UUID (-u) with -c reglist, and the agent log for registration or activation errors',
      },
    )
  }
  if (res.status !== 200) throw ctx.httpError('registrar', res, `reading agent ${uuid}`)
  const r = res.results as RegistrarAgent | null
  if (!r || typeof r.aik_tpm !== 'string' || typeof r.ek_tpm !== 'string') {
    throw new TenantError(
      'ERR_TENANT_REJECTED',
      `unexpected answer from ${ctx.label('registrar')} for agent ${uuid}: no aik_tpm/ek_tpm`,
    )
  }
  return r
}

/** `-c reglist`: the agent ids the registrar holds. */
export async function reglist(ctx: TenantContext): Promise<CommandResult> {
  const res = await ctx.call('registrar', 'GET', 'agents/')
  if (res.status !== 200) throw ctx.httpError('registrar', res, 'listing agents')
  const r = res.results as { uuids?: unknown } | null
  const uuids = Array.isArray(r?.uuids) ? r.uuids : []
  const results = { uuids }
  return {
    results,
    text: `Agent list from ${ctx.label('registrar')} retrieved:\n${pyJson(results)}`,
  }
}

/** `-c regstatus`: the registrar's record of the agent, with `operational_state: Registered`. */
export async function regstatus(ctx: TenantContext): Promise<CommandResult> {
  const agent = await fetchRegistrarAgent(ctx)
  const uuid = ctx.opts.agentUuid
  const results = { [uuid]: { ...agent, operational_state: 'Registered' } }
  return {
    results,
    text: `Agent ${uuid} exists on ${ctx.label('registrar')}.\nAgent Info from ${ctx.label('registrar')}:\n${pyJson(results)}`,
  }
}

/** `-c regdelete`: removes the agent from the registrar. */
export async function regdelete(ctx: TenantContext): Promise<CommandResult> {
  const uuid = ctx.opts.agentUuid
  const res = await ctx.call('registrar', 'DELETE', `agents/${encodeURIComponent(uuid)}`)
  if (res.status === 404) {
    throw new TenantError(
      'ERR_TENANT_NOT_FOUND',
      `Agent ${uuid} does not exist on ${ctx.label('registrar')}`,
      { httpStatus: 404, hint: 'check the UUID (-u) with -c reglist' },
    )
  }
  if (res.status !== 200) throw ctx.httpError('registrar', res, `deleting agent ${uuid}`)
  return {
    results: { agent_id: uuid, deleted: true },
    text: `Agent ${uuid} deleted from ${ctx.label('registrar')}`,
  }
}
