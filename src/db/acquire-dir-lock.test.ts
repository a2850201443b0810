import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { acquireDirLock, LOCK_FILE_NAME, processStartTime } from './acquire-dir-lock.ts'
import { DatabaseError } from './errors.ts'

let dir: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kl-lock-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

function lockError(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(DatabaseError)
    return error as DatabaseError
  }
  throw new Error('expected a lock error')
}

describe('acquireDirLock', () => {
  test('writes "<pid> <start time>" with mode 0600 and removes it on release', () => {
    const lock = acquireDirLock(dir)
    const path = join(dir, LOCK_FILE_NAME)
    expect(lock.path).toBe(path)
    const [pid] = readFileSync(path, 'utf8').trim().split(' ')
    expect(Number(pid)).toBe(process.pid)
    expect(Bun.file(path).size).toBeGreaterThan(0)
    lock.release()
    expect(existsSync(path)).toBe(false)
    lock.release()
  })

  test('refuses a second acquisition in the same process', () => {
    const lock = acquireDirLock(dir)
    try {
      expect(lockError(() => acquireDirLock(dir)).code).toBe('ERR_DB_LOCKED')
    } finally {
      lock.release()
    }
    acquireDirLock(dir).release()
  })

  test('refuses when a live process holds it, naming its pid', () => {
    const child = Bun.spawn(['sleep', '30'])
    try {
      const start = processStartTime(child.pid) ?? ''
      writeFileSync(join(dir, LOCK_FILE_NAME), `${child.pid} ${start}\n`)
      const error = lockError(() => acquireDirLock(dir))
      expect(error.code).toBe('ERR_DB_LOCKED')
      expect(error.message).toBe(
        `embedded database ${dir} is in use by pid ${child.pid}; run both roles in one process or configure database_url`,
      )
    } finally {
      child.kill()
    }
  })

  test('takes over a lock left by a dead process', async () => {
    const child = Bun.spawn(['true'])
    await child.exited
    writeFileSync(join(dir, LOCK_FILE_NAME), `${child.pid} 1\n`)
    const lock = acquireDirLock(dir)
    expect(readFileSync(lock.path, 'utf8').startsWith(`${process.pid} `)).toBe(true)
    lock.release()
  })

  test('takes over when the pid was reused by a process with another start time', () => {
    const child = Bun.spawn(['sleep', '30'])
    try {
      writeFileSync(join(dir, LOCK_FILE_NAME), `${child.pid} 1\n`)
      if (processStartTime(child.pid) === undefined) {
        console.log('skip: /proc is unavailable, pid reuse cannot be detected')
        return
      }
      const lock = acquireDirLock(dir)
      expect(readFileSync(lock.path, 'utf8').startsWith(`${process.pid} `)).toBe(true)
      lock.release()
    } finally {
      child.kill()
    }
  })

  test('takes over a lock naming this very pid (a restarted container reuses pid 1)', () => {
    writeFileSync(join(dir, LOCK_FILE_NAME), `${process.pid} 0\n`)
    const lock = acquireDirLock(dir)
    lock.release()
  })

  test('treats garbage in the lock file as stale', () => {
    writeFileSync(join(dir, LOCK_FILE_NAME), 'not a pid')
    acquireDirLock(dir).release()
  })

  test('release leaves a lock file that is no longer ours', () => {
    const lock = acquireDirLock(dir)
    writeFileSync(lock.path, '1 0\n')
    lock.release()
    expect(readFileSync(lock.path, 'utf8')).toBe('1 0\n')
  })

  test('a missing directory is a typed error', () => {
    expect(lockError(() => acquireDirLock(join(dir, 'missing'))).code).toBe('ERR_DB_OPEN')
  })
})
