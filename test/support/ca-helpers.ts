/**
 * Test helpers for `src/ca` (imported by tests only): temporary directories and an `openssl`
 * runner that reports whether the tool is present.
 *
 * @module
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Path of `openssl`, or null when absent. */
export const OPENSSL = Bun.which('openssl')

/** Creates a fresh temporary directory. */
export function tempDir(prefix = 'keylime-ca-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Runs `openssl` with `args` in `cwd`; returns exit code and combined output. */
export function openssl(args: string[], cwd?: string): { code: number; out: string } {
  const r = Bun.spawnSync([OPENSSL ?? 'openssl', ...args], { cwd, stderr: 'pipe', stdout: 'pipe' })
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() }
}

/** File mode bits of `path`. */
export async function modeOf(path: string): Promise<number> {
  const { stat } = await import('node:fs/promises')
  return (await stat(path)).mode & 0o777
}
