/**
 * `keylime_tenant` (and `keylime tenant`): parses the arguments, loads `tenant.conf`, runs one
 * command and maps the outcome to an exit code ({@link TENANT_EXIT}).
 *
 * Start-up cost matters here (upstream takes 1.0–1.7 s for `-c reglist`): only the argument
 * parser, the config loader and the mTLS client load eagerly. Enrolment (`add`, `update`: TPM
 * quote checks, payload crypto, CA packages) and policy commands (runtime/measured-boot policy
 * validation) are imported when those commands run.
 *
 * @module
 */
import { getKeylimeDir } from '../config/get-keylime-dir.ts'
import { loadTenantConfig } from '../config/load-tenant-config.ts'
import type { ConfigLoadOptions } from '../config/read-config-files.ts'
import { setLogSink } from '../log/logger.ts'
import { TENANT_EXIT, toTenantError } from './errors.ts'
import { parseTenantArgs, TENANT_USAGE, type TenantOptions } from './parse-tenant-args.ts'
import { type CommandResult, regdelete, reglist, regstatus } from './registrar-commands.ts'
import { TenantContext } from './tenant-context.ts'
import { TenantOutput } from './tenant-output.ts'

/** Where the tenant writes and what it reads (the CLI's `CliIo`). */
export interface TenantIo {
  stdout: (s: string) => void
  stderr: (s: string) => void
  env: NodeJS.ProcessEnv
  /** Config loading overrides (tests: `etcDir`, `usrEtcDir`). */
  config?: ConfigLoadOptions
}

/** Commands that act on one agent (and so use `-u`). */
const AGENT_COMMANDS = new Set([
  'add',
  'update',
  'delete',
  'status',
  'cvstatus',
  'regstatus',
  'reactivate',
  'regdelete',
])

async function dispatch(ctx: TenantContext): Promise<CommandResult> {
  const o = ctx.opts
  switch (o.command) {
    case 'reglist':
      return reglist(ctx)
    case 'regstatus':
      return regstatus(ctx)
    case 'regdelete':
      return regdelete(ctx)
    case 'cvstatus':
    case 'status':
    case 'cvlist':
    case 'bulkinfo':
    case 'delete':
    case 'reactivate': {
      const m = await import('./verifier-commands.ts')
      return m.runVerifierCommand(ctx, o.command)
    }
    case 'add':
    case 'update': {
      const m = await import('./add-agent.ts')
      return m.addAgent(ctx)
    }
    default: {
      const m = await import('./policy-commands.ts')
      return m.runPolicyCommand(ctx, o.command)
    }
  }
}

/**
 * Runs the tenant with `args` (without the program name).
 *
 * @returns the exit code (see {@link TENANT_EXIT}).
 */
export async function runTenant(args: readonly string[], io: TenantIo): Promise<number> {
  const jsonRequested = args.includes('--json')
  let out = new TenantOutput(io, jsonRequested)
  let opts: TenantOptions | undefined
  const previousSink = setLogSink((line) => io.stderr(`${line}\n`))
  try {
    opts = parseTenantArgs(args)
    out = new TenantOutput(io, opts.json)
    if (opts.help) {
      io.stdout(TENANT_USAGE)
      return TENANT_EXIT.OK
    }
    for (const w of opts.warnings) out.warn(w)
    if (opts.defaultUuid && AGENT_COMMANDS.has(opts.command))
      out.warn(`Using default UUID ${opts.agentUuid}`)
    const cfg = loadTenantConfig({
      env: io.env,
      warn: (msg) => out.warn(msg),
      ...io.config,
    })
    const ctx = new TenantContext(opts, cfg.tenant, getKeylimeDir(io.env), out, io.env)
    const result = await dispatch(ctx)
    out.result(opts.command, result.results, result.text)
    return TENANT_EXIT.OK
  } catch (err) {
    const e = toTenantError(err)
    out.error(opts?.command ?? commandOf(args), e)
    if (e.exitCode === TENANT_EXIT.USAGE && !out.json)
      io.stderr('run keylime_tenant --help for the options\n')
    return e.exitCode
  } finally {
    setLogSink(previousSink)
  }
}

/** The `-c` value of raw arguments (for error documents before parsing succeeded). */
function commandOf(args: readonly string[]): string {
  const i = args.findIndex((a) => a === '-c' || a === '--command')
  const inline = args.find((a) => a.startsWith('--command='))
  return (i >= 0 ? args[i + 1] : inline?.slice(10)) ?? 'add'
}
