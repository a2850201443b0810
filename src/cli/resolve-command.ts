/**
 * Decides what one invocation of the `keylime` binary does, busybox-style: by the name it was invoked
 * under (`keylime_tenant`, `keylime_ca`, `keylime_verifier`, `keylime_registrar`, … as symlinks, so
 * upstream's command lines work verbatim) or by a sub-command of `keylime` (`keylime tenant …`,
 * `keylime ca …`, `keylime policy …`, `keylime health …`, `keylime ear …`), else the control plane with
 * `--verifier` / `--registrar`.
 *
 * @module
 */
import { basename } from 'node:path'

/** Which roles the control plane runs. */
export interface RoleFlags {
  verifier: boolean
  registrar: boolean
}

/** A resolved invocation. */
export type Command =
  | { kind: 'control-plane'; roles: RoleFlags }
  | { kind: 'tenant'; args: string[] }
  | { kind: 'ca'; args: string[] }
  | { kind: 'policy'; args: string[] }
  | { kind: 'health'; args: string[] }
  | { kind: 'ear'; args: string[] }
  | { kind: 'tool'; tool: LegacyTool; args: string[] }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'usage-error'; message: string }

/** Upstream's stand-alone tools that map onto one of our commands. */
export const LEGACY_TOOLS = [
  'keylime_create_policy',
  'keylime_sign_runtime_policy',
  'keylime_convert_runtime_policy',
  'keylime_userdata_encrypt',
  'create_mb_refstate',
] as const

/** A legacy tool name. */
export type LegacyTool = (typeof LEGACY_TOOLS)[number]

/**
 * Every name besides `keylime` that {@link resolveCommand} dispatches on: the symlinks
 * `scripts/build.ts` makes next to the binary (and in the image).
 */
export const PROGRAM_NAMES = [
  'keylime_verifier',
  'keylime_registrar',
  'keylime_tenant',
  'keylime_ca',
  'keylime-policy',
  'keylime-health',
  ...LEGACY_TOOLS,
] as const

/** The program name from `argv0` (a path or a bare name; `.exe`-free on Linux). */
export function programName(argv0: string): string {
  return basename(argv0)
}

function controlPlane(args: string[], defaults: RoleFlags): Command {
  const roles: RoleFlags = { verifier: false, registrar: false }
  for (const arg of args) {
    if (arg === '--verifier') roles.verifier = true
    else if (arg === '--registrar') roles.registrar = true
    else if (arg === '-h' || arg === '--help') return { kind: 'help' }
    else if (arg === '--version') return { kind: 'version' }
    else return { kind: 'usage-error', message: `unknown argument "${arg}"` }
  }
  if (!roles.verifier && !roles.registrar) return { kind: 'control-plane', roles: defaults }
  return { kind: 'control-plane', roles }
}

/**
 * Resolves an invocation.
 *
 * @param argv0 the invoked name (`process.argv0` in a compiled binary)
 * @param args the user arguments
 */
export function resolveCommand(argv0: string, args: string[]): Command {
  const name = programName(argv0)
  switch (name) {
    case 'keylime_tenant':
      return { kind: 'tenant', args }
    case 'keylime_ca':
      return { kind: 'ca', args }
    case 'keylime_verifier':
      return controlPlane(args, { verifier: true, registrar: false })
    case 'keylime_registrar':
      return controlPlane(args, { verifier: false, registrar: true })
    case 'keylime-policy':
      return { kind: 'policy', args }
    // one word for a container's --health-cmd, which runlabel cannot give a space
    case 'keylime-health':
      return { kind: 'health', args }
  }
  if ((LEGACY_TOOLS as readonly string[]).includes(name)) {
    return { kind: 'tool', tool: name as LegacyTool, args }
  }
  const [sub, ...rest] = args
  switch (sub) {
    case 'tenant':
      return { kind: 'tenant', args: rest }
    case 'ca':
      return { kind: 'ca', args: rest }
    case 'policy':
      return { kind: 'policy', args: rest }
    case 'health':
      return { kind: 'health', args: rest }
    case 'ear':
      return { kind: 'ear', args: rest }
    case 'verifier':
      return controlPlane(rest, { verifier: true, registrar: false })
    case 'registrar':
      return controlPlane(rest, { verifier: false, registrar: true })
    case 'help':
      return { kind: 'help' }
    case 'version':
      return { kind: 'version' }
  }
  if (sub !== undefined && (LEGACY_TOOLS as readonly string[]).includes(sub)) {
    return { kind: 'tool', tool: sub as LegacyTool, args: rest }
  }
  if (sub !== undefined && !sub.startsWith('-')) {
    return { kind: 'usage-error', message: `unknown command "${sub}"` }
  }
  return controlPlane(args, { verifier: true, registrar: true })
}
