/**
 * `run_as = "user:group"`: after the TPM device, the secure mount and the listener are set up as
 * root, switch to an unprivileged account (rust-keylime `permissions.rs`). Names are resolved from
 * /etc/passwd and /etc/group.
 *
 * @module
 */

import { readFileSync } from 'node:fs'
import { AgentError } from './errors.ts'

function lookup(file: string, name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name)
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':')
      if (f[0] === name && f[2] !== undefined) return Number(f[2])
    }
  } catch {
    return undefined
  }
  return undefined
}

/**
 * Drops to `runAs` (`user` or `user:group`) when running as root; no-op otherwise or when empty.
 *
 * @throws {AgentError} `ERR_AGENT_CONFIG` naming `run_as` if the account does not exist.
 */
export function dropPrivileges(runAs: string): { uid: number; gid: number } | undefined {
  if (runAs.trim() === '' || process.getuid?.() !== 0) return undefined
  const [user, group] = runAs.split(':', 2) as [string, string | undefined]
  const uid = lookup('/etc/passwd', user)
  if (uid === undefined)
    throw new AgentError('ERR_AGENT_CONFIG', `option run_as: no user "${user}"`)
  let gid: number | undefined
  if (group !== undefined && group !== '') {
    gid = lookup('/etc/group', group)
    if (gid === undefined) {
      throw new AgentError('ERR_AGENT_CONFIG', `option run_as: no group "${group}"`)
    }
  } else {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[2] === String(uid))
    gid = Number(line?.split(':')[3] ?? uid)
  }
  process.setgroups?.([gid])
  process.setgid?.(gid)
  process.setuid?.(uid)
  return { uid, gid }
}
