/**
 * The agent's secure directory (`<keylime_dir>/secure`, wire-formats §4): a tmpfs mounted
 * `size=<secure_size>,mode=0700` when running as root and it is not mounted yet (rust-keylime
 * `secure_mount.rs`), else a plain 0700 directory (tests, unprivileged runs). Keys and payloads
 * live only here. A tmpfs the agent mounted is unmounted when it stops (unmount-secure-dir.ts).
 *
 * @module
 */

import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs'

/** What {@link prepareSecureDir} did. */
export interface SecureDir {
  /** The directory. */
  path: string
  /** True if it is a tmpfs mount. */
  tmpfs: boolean
  /** True if this call mounted it (and so the agent unmounts it when it stops). */
  mounted: boolean
  /** Why it is not a tmpfs (for the start-up log), if it is not. */
  note?: string
}

/** True if `path` is a tmpfs mount point (from /proc/self/mounts). */
function isTmpfs(path: string): boolean {
  try {
    return readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .some((l) => {
        const [, mnt, type] = l.split(' ')
        return mnt === path && type === 'tmpfs'
      })
  } catch {
    return false
  }
}

/** Creates (and, as root, mounts) the secure directory. */
export function prepareSecureDir(path: string, size: string, mount = true): SecureDir {
  if (!existsSync(path)) mkdirSync(path, { recursive: true, mode: 0o700 })
  chmodSync(path, 0o700)
  if (isTmpfs(path)) return { path, tmpfs: true, mounted: false }
  if (!mount || process.getuid?.() !== 0) {
    return { path, tmpfs: false, mounted: false, note: 'not root: plain 0700 directory' }
  }
  const r = Bun.spawnSync(['mount', '-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', path], {
    stdout: 'ignore',
    stderr: 'pipe',
  })
  if (r.exitCode !== 0) {
    return {
      path,
      tmpfs: false,
      mounted: false,
      note: `mount failed: ${r.stderr.toString().trim()}`,
    }
  }
  return { path, tmpfs: true, mounted: true }
}
