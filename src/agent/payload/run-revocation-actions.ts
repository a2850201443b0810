/**
 * Revocation actions on a verified notice (wire-formats §5, rust-keylime `revocation.rs`): the
 * configured `revocation_actions` then the lines of the payload's `action_list`; each is looked
 * up in `revocation_actions_dir`, then (if `allow_payload_revocation_actions`) in the payload's
 * `unzipped/` directory, and run as `<script> <json file>` with cwd = keylime_dir, where the
 * file (0600, removed afterwards) holds the notice's parsed JSON. The first non-zero exit stops
 * the list.
 *
 * @module
 */

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'

/** Options of {@link runRevocationActions}. */
export interface RevocationActionsOptions {
  /** `revocation_actions` (names). */
  configured: readonly string[]
  /** `revocation_actions_dir`. */
  actionsDir: string
  /** `<secure>/unzipped` (holds `action_list` and payload scripts). */
  unzippedDir: string
  /** `allow_payload_revocation_actions`. */
  allowPayloadActions: boolean
  /** `keylime_dir` (cwd and temp file place). */
  keylimeDir: string
  /** Log sink. */
  log?: (msg: string, fields?: Record<string, unknown>) => void
}

/** One action's outcome. */
export interface ActionResult {
  /** The action name. */
  action: string
  /** Exit status (undefined: not found). */
  exit: number | undefined
}

/** Runs the actions for one notice; returns what ran. */
export async function runRevocationActions(
  notice: unknown,
  opts: RevocationActionsOptions,
): Promise<ActionResult[]> {
  const log = opts.log ?? (() => {})
  const names = [...opts.configured]
  const list = join(opts.unzippedDir, 'action_list')
  if (existsSync(list)) {
    for (const l of readFileSync(list, 'utf8').split(/[\n,]/))
      if (l.trim() !== '') names.push(l.trim())
  }
  const results: ActionResult[] = []
  if (names.length === 0) return results
  const file = join(opts.keylimeDir, `revocation-${process.pid}-${Date.now()}.json`)
  writeFileSync(file, JSON.stringify(notice), { mode: 0o600 })
  try {
    for (const name of names) {
      const base = basename(name) // an action is a file name, never a path
      const candidates = [join(opts.actionsDir, base)]
      if (opts.allowPayloadActions) candidates.push(join(opts.unzippedDir, base))
      const script = candidates.find((c) => existsSync(c))
      if (script === undefined) {
        log('revocation action not found', { action: base })
        results.push({ action: base, exit: undefined })
        continue
      }
      const proc = Bun.spawn([script, file], {
        cwd: opts.keylimeDir,
        stdout: 'inherit',
        stderr: 'inherit',
      })
      const exit = await proc.exited
      results.push({ action: base, exit })
      log('revocation action finished', { action: base, exit })
      if (exit !== 0) break
    }
  } finally {
    rmSync(file, { force: true })
  }
  return results
}
