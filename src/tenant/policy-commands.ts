/**
 * Named policy management on the verifier (upstream `Tenant.do_*_runtime_policy`,
 * `do_*_mb_policy`; keylime-api.md §1.4 "Runtime policies", "MB policies"):
 * `addruntimepolicy`, `showruntimepolicy`, `updateruntimepolicy`, `deleteruntimepolicy`,
 * `listruntimepolicy` (and the deprecated `addallowlist`, `showallowlist`, `deleteallowlist`),
 * `addmbpolicy`, `showmbpolicy`, `updatembpolicy`, `deletembpolicy`, `listmbpolicy`.
 *
 * @module
 */
import { tpmPolicyToJson } from '../protocol/tpm-policy.ts'
import { buildPolicies } from './build-policies.ts'
import { usageError } from './errors.ts'
import type { TenantCommand } from './parse-tenant-args.ts'
import type { CommandResult } from './registrar-commands.ts'
import type { TenantContext } from './tenant-context.ts'
import { pyJson } from './tenant-output.ts'

function runtimeName(ctx: TenantContext, action: string): string {
  const name = ctx.opts.allowlistName ?? ctx.opts.runtimePolicyName
  if (!name)
    throw usageError(
      `--runtime-policy-name (or the deprecated --allowlist-name) is required to ${action} a runtime policy`,
    )
  if (ctx.opts.allowlistName !== undefined)
    ctx.out.warn('--allowlist-name is deprecated. Use --runtime-policy-name instead.')
  return name
}

function mbName(ctx: TenantContext, action: string): string {
  const name = ctx.opts.mbPolicyName
  if (!name) throw usageError(`--mb-policy-name is required to ${action} a measured boot policy`)
  return name
}

async function send(
  ctx: TenantContext,
  label: string,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  what: string,
  hint: string,
  json?: unknown,
): Promise<CommandResult> {
  const res = await ctx.call('verifier', method, path, json)
  if (res.status >= 400) throw ctx.httpError('verifier', res, what, hint)
  const results = res.results ?? {}
  return { results, text: `${label} command response: ${res.status}.\n${pyJson(res.body ?? {})}` }
}

/** Runs one policy command. */
export async function runPolicyCommand(
  ctx: TenantContext,
  command: TenantCommand,
): Promise<CommandResult> {
  const seg = (n: string) => encodeURIComponent(n)
  switch (command) {
    case 'addruntimepolicy':
    case 'addallowlist':
    case 'updateruntimepolicy': {
      if (command === 'addallowlist')
        ctx.out.warn('-c addallowlist is deprecated. Use -c addruntimepolicy instead.')
      const update = command === 'updateruntimepolicy'
      const name = runtimeName(ctx, update ? 'update' : 'add')
      if (update && !(ctx.opts.runtimePolicy || ctx.opts.runtimePolicyUrl || ctx.opts.allowlist))
        throw usageError(
          '--runtime-policy or --runtime-policy-url is required to update a runtime policy',
        )
      const p = await buildPolicies(ctx)
      return send(
        ctx,
        update ? 'updateruntimepolicy' : 'addruntimepolicy',
        update ? 'PUT' : 'POST',
        `allowlists/${seg(name)}`,
        `${update ? 'updating' : 'adding'} runtime policy ${name}`,
        update
          ? 'list the policies with -c listruntimepolicy'
          : 'a policy with this name exists? use -c updateruntimepolicy',
        {
          tpm_policy: pyJson(tpmPolicyToJson(p.tpmPolicy)),
          runtime_policy: p.runtimePolicy,
          runtime_policy_key: p.runtimePolicyKey,
        },
      )
    }
    case 'showruntimepolicy':
    case 'showallowlist': {
      if (command === 'showallowlist')
        ctx.out.warn('-c showallowlist is deprecated. Use -c showruntimepolicy instead.')
      const name = runtimeName(ctx, 'show')
      return send(
        ctx,
        'Show allowlist',
        'GET',
        `allowlists/${seg(name)}`,
        `reading runtime policy ${name}`,
        'list the policies with -c listruntimepolicy',
      )
    }
    case 'deleteruntimepolicy':
    case 'deleteallowlist': {
      if (command === 'deleteallowlist')
        ctx.out.warn('-c deleteallowlist is deprecated. Use -c deleteruntimepolicy instead.')
      const name = runtimeName(ctx, 'delete')
      const r = await send(
        ctx,
        'deleteruntimepolicy',
        'DELETE',
        `allowlists/${seg(name)}`,
        `deleting runtime policy ${name}`,
        'a policy in use by an agent cannot be deleted; delete the agent first',
      )
      return { results: { name, deleted: true }, text: r.text }
    }
    case 'listruntimepolicy':
      return send(ctx, 'list', 'GET', 'allowlists/', 'listing runtime policies', '')
    case 'addmbpolicy':
    case 'updatembpolicy': {
      const update = command === 'updatembpolicy'
      const name = mbName(ctx, update ? 'update' : 'add')
      if (ctx.opts.mbPolicy === undefined)
        throw usageError(
          `--mb-policy is required to ${update ? 'update' : 'add'} a measured boot policy`,
        )
      const p = await buildPolicies(ctx)
      return send(
        ctx,
        command,
        update ? 'PUT' : 'POST',
        `mbpolicies/${seg(name)}`,
        `${update ? 'updating' : 'adding'} measured boot policy ${name}`,
        update
          ? 'list the policies with -c listmbpolicy (the verifier answers 409 for a missing name on update)'
          : 'a policy with this name exists? use -c updatembpolicy',
        { mb_policy: p.mbPolicy },
      )
    }
    case 'showmbpolicy': {
      const name = mbName(ctx, 'show')
      return send(
        ctx,
        'showmbpolicy',
        'GET',
        `mbpolicies/${seg(name)}`,
        `reading measured boot policy ${name}`,
        'list the policies with -c listmbpolicy',
      )
    }
    case 'deletembpolicy': {
      const name = mbName(ctx, 'delete')
      const r = await send(
        ctx,
        'deletembpolicy',
        'DELETE',
        `mbpolicies/${seg(name)}`,
        `deleting measured boot policy ${name}`,
        'a policy in use by an agent cannot be deleted; delete the agent first',
      )
      return { results: { name, deleted: true }, text: r.text }
    }
    case 'listmbpolicy':
      return send(ctx, 'listmbpolicy', 'GET', 'mbpolicies/', 'listing measured boot policies', '')
    default:
      throw usageError(`Invalid command specified: ${command}`)
  }
}
