/**
 * Routes `keylime policy …` (upstream's consolidated `keylime-policy`) and the legacy tool names to
 * the policy tools of `src/policy-tools` (runtime policies, measured-boot reference states).
 *
 * @module
 */
import {
  runCreateMbRefstate,
  runLegacyConvertPolicy,
  runLegacyCreatePolicy,
  runLegacySignPolicy,
  runPolicyCreateMeasuredBoot,
  runPolicyCreateRuntime,
  runPolicySignRuntime,
} from '../policy-tools/index.ts'
import type { ToolContext } from '../tool-context.ts'
import type { LegacyTool } from './resolve-command.ts'

/** Help for `keylime policy`. */
export const POLICY_USAGE = `usage: keylime policy create runtime [options]        (keylime-policy create runtime)
       keylime policy create measured-boot -e EVENTLOG [-i] [-o OUT]
       keylime policy sign runtime -r POLICY -k KEY [-b ecdsa|x509] [-o OUT] [-c CERT_OUT]
Add -h after a sub-command for its options.
`

/** Runs `keylime policy <args>`; returns the exit code. */
export async function runPolicyCommand(args: string[], ctx: ToolContext): Promise<number> {
  const [verb, kind, ...rest] = args
  if (verb === 'create' && kind === 'runtime') return runPolicyCreateRuntime(rest, ctx)
  if (verb === 'create' && kind === 'measured-boot') return runPolicyCreateMeasuredBoot(rest, ctx)
  if (verb === 'sign' && kind === 'runtime') return runPolicySignRuntime(rest, ctx)
  const help = (a: string | undefined) => a === '-h' || a === '--help'
  if (verb === undefined || help(verb) || ((verb === 'create' || verb === 'sign') && help(kind))) {
    ctx.stdout.write(POLICY_USAGE)
    return verb === undefined ? 2 : 0
  }
  ctx.stderr.write(
    `keylime policy: unknown command "${[verb, kind].filter(Boolean).join(' ')}"\n${POLICY_USAGE}`,
  )
  return 2
}

/** Runs a legacy policy tool by name (`keylime_userdata_encrypt` is the tenant's). */
export function runLegacyTool(
  tool: Exclude<LegacyTool, 'keylime_userdata_encrypt'>,
  args: string[],
  ctx: ToolContext,
): Promise<number> {
  switch (tool) {
    case 'keylime_create_policy':
      return runLegacyCreatePolicy(args, ctx)
    case 'keylime_sign_runtime_policy':
      return runLegacySignPolicy(args, ctx)
    case 'keylime_convert_runtime_policy':
      return runLegacyConvertPolicy(args, ctx)
    case 'create_mb_refstate':
      return runCreateMbRefstate(args, ctx)
  }
}
