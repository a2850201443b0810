/**
 * An exclusive, process-level lock on an embedded database directory.
 *
 * PGlite is PostgreSQL in WebAssembly with no postmaster: two processes opening one data directory
 * would corrupt it. The lock is a pid file, created with `O_CREAT|O_EXCL`, holding
 * `<pid> <start time>`; the start time (field 22 of `/proc/<pid>/stat`) tells a live owner from an
 * unrelated process that reused a dead owner's pid (common in containers, where keylime is often
 * pid 1 after every restart). A stale file is moved aside with an atomic `rename` and re-checked,
 * so two processes breaking the same stale lock cannot both win.
 *
 * @module
 */
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseError } from './errors.ts'

/** Name of the lock file inside the data directory. */
export const LOCK_FILE_NAME = 'keylime-ts.lock'

/** A held lock; {@link DirLock.release} is idempotent. */
export interface DirLock {
  /** Absolute path of the lock file. */
  readonly path: string
  /** Removes the lock file if it is still ours. */
  release(): void
}

/** Lock files this process holds, to refuse a double acquisition inside one process. */
const held = new Set<string>()

/** Start time of `pid` in clock ticks since boot, or undefined where `/proc` is unavailable. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) is parenthesised and may contain spaces: split after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[19]
  } catch {
    return undefined
  }
}

/** Whether a lock file's content names a live process other than a reused pid. */
function ownerAlive(content: string): { alive: boolean; pid: number } {
  const [pidText, start] = content.trim().split(/\s+/)
  const pid = Number(pidText)
  if (!Number.isSafeInteger(pid) || pid <= 0) return { alive: false, pid: 0 }
  if (pid === process.pid) return { alive: false, pid }
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return { alive: false, pid }
  }
  const actual = processStartTime(pid)
  if (start !== undefined && actual !== undefined && actual !== start) return { alive: false, pid }
  return { alive: true, pid }
}

function readOrEmpty(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Takes the exclusive lock on `dir` (which must exist) for this process.
 *
 * @throws {DatabaseError} `ERR_DB_LOCKED` when another live process holds it, or when this
 *   process already holds it (callers share one instance instead, see `openDatabase`).
 */
export function acquireDirLock(dir: string): DirLock {
  const path = join(dir, LOCK_FILE_NAME)
  if (held.has(path)) {
    throw new DatabaseError(
      'ERR_DB_LOCKED',
      `embedded database ${dir} is already open in this process`,
    )
  }
  const content = `${process.pid} ${processStartTime(process.pid) ?? ''}\n`
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600)
      try {
        writeSync(fd, content)
      } finally {
        closeSync(fd)
      }
      held.add(path)
      let released = false
      return {
        path,
        release() {
          if (released) return
          released = true
          held.delete(path)
          if (readOrEmpty(path) === content) unlinkSync(path)
        },
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new DatabaseError('ERR_DB_OPEN', `cannot create lock file in ${dir}`, {
          cause: error,
        })
      }
    }
    const existing = readOrEmpty(path)
    if (existing === undefined) continue
    const owner = ownerAlive(existing)
    if (owner.alive) {
      throw new DatabaseError(
        'ERR_DB_LOCKED',
        `embedded database ${dir} is in use by pid ${owner.pid}; run both roles in one process or configure database_url`,
      )
    }
    breakStaleLock(path, existing)
  }
  throw new DatabaseError('ERR_DB_LOCKED', `could not take the lock on embedded database ${dir}`)
}

/** Moves a stale lock aside; puts it back if someone replaced it between our read and rename. */
function breakStaleLock(path: string, staleContent: string): void {
  const aside = `${path}.stale.${process.pid}`
  try {
    renameSync(path, aside)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  const moved = readOrEmpty(aside)
  if (moved === staleContent) {
    unlinkSync(aside)
    return
  }
  // A live process took the lock in between: restore its file unless it re-created one already.
  try {
    const fd = openSync(path, 'wx', 0o600)
    try {
      writeSync(fd, moved ?? '')
    } finally {
      closeSync(fd)
    }
  } catch {
    // The path exists again: leave it, the next loop iteration re-reads it.
  }
  try {
    unlinkSync(aside)
  } catch {
    // Already gone.
  }
}
