/**
 * An exclusive, cross-process lock on a CA directory: a lock file created with `O_EXCL` holding
 * `<pid>@<hostname> <ms>`. Holders on this host that died are detected by pid; any lock older than
 * `staleMs` is considered abandoned (covers other hosts sharing a volume). Used so that two
 * control-plane processes starting at once create one CA, not two.
 *
 * @module
 */
import { hostname } from 'node:os'
import { open, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { CA_FILES } from './ca-files.ts'
import { CaError } from './errors.ts'
import { getLogger } from '../log/logger.ts'

/** Options of {@link withDirLock}. */
export interface DirLockOptions {
  /** Give up after this long (default 120 s). */
  timeoutMs?: number
  /** A lock file older than this is removed (default 300 s). */
  staleMs?: number
}

const log = getLogger('ca')

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function isStale(lockPath: string, staleMs: number): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)])
    if (Date.now() - st.mtimeMs > staleMs) return true
    const m = /^(\d+)@(\S+)/.exec(text)
    if (m && m[2] === hostname()) return !pidAlive(Number(m[1]))
    return false
  } catch {
    // Vanished or unreadable while we looked: treat as not stale and retry.
    return false
  }
}

/**
 * Runs `fn` while holding the lock of `dir` (which must exist).
 *
 * @throws {CaError} `ERR_CA_LOCK_TIMEOUT` if the lock is not acquired within `timeoutMs`.
 */
export async function withDirLock<T>(
  dir: string,
  fn: () => Promise<T>,
  opts: DirLockOptions = {},
): Promise<T> {
  const lockPath = join(dir, CA_FILES.lock)
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000)
  const staleMs = opts.staleMs ?? 300_000
  let delay = 10
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o600)
      try {
        await fh.writeFile(`${process.pid}@${hostname()} ${Date.now()}\n`)
      } finally {
        await fh.close()
      }
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      if (await isStale(lockPath, staleMs)) {
        log.warn('removing stale CA lock', { path: lockPath })
        await rm(lockPath, { force: true })
        continue
      }
      if (Date.now() > deadline) {
        throw new CaError('ERR_CA_LOCK_TIMEOUT', `timed out waiting for the CA lock ${lockPath}`)
      }
      await Bun.sleep(delay + Math.floor(Math.random() * delay))
      delay = Math.min(delay * 2, 500)
    }
  }
  try {
    return await fn()
  } finally {
    await rm(lockPath, { force: true })
  }
}
