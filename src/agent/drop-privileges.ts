/**
 * `run_as = "user:group"` (rust-keylime `permissions.rs`, main.rs): right after the secure
 * directory is mounted, before the TPM is opened and long before the agent registers, a root
 * agent hands the mount to the account and switches to it for good. Everything after — key
 * files, the TPM device (`/dev/tpmrm0` is group `tss` on most distributions), payloads — happens
 * as that account, so a wrong `run_as` stops the agent at start with a message naming it.
 * Started as another user, the agent ignores `run_as` with a warning, as rust-keylime does.
 * Names are resolved from /etc/passwd and /etc/group.
 *
 * @module
 */

import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { AgentError } from './errors.ts'

/** node's `process.initgroups` (present in Bun, missing from its types). */
const initgroups = (process as { initgroups?: (user: string, extraGroup: number) => void })
  .initgroups

/** A `run_as` account resolved to ids. */
export interface RunAsAccount {
  /** `run_as` as configured. */
  spec: string
  /** User name (or numeric id as written). */
  user: string
  uid: number
  gid: number
}

/** The numeric id of `name` in a passwd/group file, and the line's fields. */
function lookup(file: string, name: string): string[] | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  const byId = /^\d+$/.test(name)
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (f[2] !== undefined && (byId ? f[2] === name : f[0] === name)) return f
  }
  return byId ? [name, '', name] : undefined
}

/**
 * Resolves `run_as` (`user:group`, or `user` for its primary group). Undefined when it is empty,
 * or when the agent does not run as root (then `warn` says so).
 *
 * @throws {AgentError} `ERR_AGENT_CONFIG` naming `run_as` if the user or group does not exist.
 */
export function resolveRunAs(
  runAs: string,
  warn: (msg: string) => void = () => {},
): RunAsAccount | undefined {
  const spec = runAs.trim()
  if (spec === '') return undefined
  if (process.getuid?.() !== 0) {
    warn(`option run_as = "${spec}" ignored: the agent was not started as root`)
    return undefined
  }
  const [user, group] = spec.split(':', 2) as [string, string | undefined]
  const pw = user === '' ? undefined : lookup('/etc/passwd', user)
  if (pw === undefined) {
    throw new AgentError(
      'ERR_AGENT_CONFIG',
      `option run_as = "${spec}": no user "${user}" (create it, e.g. useradd -r -g tss ${user || 'keylime'})`,
    )
  }
  let gid = Number(pw[3] ?? pw[2])
  if (group !== undefined && group !== '') {
    const gr = lookup('/etc/group', group)
    if (gr === undefined) {
      throw new AgentError('ERR_AGENT_CONFIG', `option run_as = "${spec}": no group "${group}"`)
    }
    gid = Number(gr[2])
  }
  return { spec, user, uid: Number(pw[2]), gid }
}

/**
 * Switches the process to `account` for good: supplementary groups (the user's, from
 * /etc/group), then gid, then uid (POS36-C).
 *
 * @throws {AgentError} `ERR_AGENT_PRIVILEGES` if the system refuses a step.
 */
export function dropPrivileges(account: RunAsAccount): void {
  try {
    if (/^\d+$/.test(account.user)) process.setgroups?.([account.gid])
    else if (initgroups !== undefined) initgroups(account.user, account.gid)
    else process.setgroups?.([account.gid])
    process.setgid?.(account.gid)
    process.setuid?.(account.uid)
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause)
    throw new AgentError(
      'ERR_AGENT_PRIVILEGES',
      `option run_as = "${account.spec}": cannot switch to uid ${account.uid} gid ${account.gid}: ${why}`,
      { cause },
    )
  }
  if (process.getuid?.() !== account.uid || process.getgid?.() !== account.gid) {
    throw new AgentError(
      'ERR_AGENT_PRIVILEGES',
      `option run_as = "${account.spec}": still uid ${process.getuid?.()} gid ${process.getgid?.()} after switching`,
    )
  }
}

/**
 * After {@link dropPrivileges}: the account must be able to write `dir` (keylime_dir) and read
 * and write the files in `files` that exist (keys, agent_data.json, a TPM device).
 *
 * @throws {AgentError} `ERR_AGENT_PRIVILEGES` naming the path and the fix.
 */
export function checkRunAsAccess(account: RunAsAccount, dir: string, files: string[]): void {
  const fix = `chown -R ${account.spec} ${dir}`
  for (const [path, isDir] of [[dir, true] as const, ...files.map((f) => [f, false] as const)]) {
    if (!isDir && !existsSync(path)) continue
    try {
      accessSync(path, constants.R_OK | constants.W_OK | (isDir ? constants.X_OK : 0))
    } catch {
      throw new AgentError(
        'ERR_AGENT_PRIVILEGES',
        `option run_as = "${account.spec}": ${path} is not ${isDir ? 'writable' : 'readable and writable'} by that account (${path.startsWith('/dev/') ? `give group ${account.gid} access to it` : fix})`,
      )
    }
  }
}
