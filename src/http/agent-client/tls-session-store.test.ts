import { describe, expect, test } from 'bun:test'
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sessionFileFor, TlsSessionStore } from './tls-session-store.ts'

const dir = () => mkdtempSync(join(tmpdir(), 'kl-tls-sessions-'))
const session = (byte: number, n = 64) => Buffer.alloc(n, byte)

describe('TlsSessionStore', () => {
  test('kept sessions are saved by atomic replace in a 0600 file and read back', () => {
    const d = dir()
    const file = sessionFileFor(d, 'verifier-a')
    const store = new TlsSessionStore(file)
    store.keep('s|10.0.0.1|9002|x', session(1), false)
    expect(store.has('s|10.0.0.1|9002|x')).toBe(true)
    store.close()
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readdirSync(d)).toEqual([file.slice(d.length + 1)]) // no temporary file left
    const again = new TlsSessionStore(file)
    expect(again.get('s|10.0.0.1|9002|x')).toEqual(session(1))
    again.close()
  })

  test('the file name is per instance, and the same for the same instance', () => {
    expect(sessionFileFor('/d', 'a')).toBe(sessionFileFor('/d', 'a'))
    expect(sessionFileFor('/d', 'a')).not.toBe(sessionFileFor('/d', 'b'))
    expect(sessionFileFor('/d', 'a')).toMatch(/^\/d\/verifier-tls-sessions-[0-9a-f]{12}\.json$/)
  })

  test('empty and oversized sessions are not kept', () => {
    const store = new TlsSessionStore()
    store.keep('a', undefined, false)
    store.keep('b', Buffer.alloc(0), false)
    store.keep('c', session(2, 8 * 1024 + 1), false)
    expect([store.has('a'), store.has('b'), store.has('c')]).toEqual([false, false, false])
    store.keep('d', session(2, 8 * 1024), false)
    expect(store.has('d')).toBe(true)
  })

  test('a resumed connection keeps the recent session; a full handshake replaces it', () => {
    const store = new TlsSessionStore()
    store.keep('k', session(1), false)
    store.keep('k', session(2), true)
    expect(store.get('k')).toEqual(session(1))
    store.keep('k', session(3), false)
    expect(store.get('k')).toEqual(session(3))
  })

  test('garbled files, malformed entries and sessions older than a day are skipped', () => {
    const d = dir()
    const file = join(d, 'sessions.json')
    writeFileSync(file, '{not json')
    expect(new TlsSessionStore(file).has('x')).toBe(false)
    const now = Date.now()
    const b64 = session(7).toString('base64')
    writeFileSync(
      file,
      JSON.stringify({
        v: 1,
        sessions: [
          ['fresh', b64, now],
          ['old', b64, now - 25 * 3_600_000],
          ['no-time', b64],
          [1, b64, now],
          'junk',
          ['huge', 'A'.repeat(20_000), now],
        ],
      }),
    )
    const store = new TlsSessionStore(file)
    expect(['fresh', 'old', 'no-time', 'huge'].map((k) => store.has(k))).toEqual([
      true,
      false,
      false,
      false,
    ])
    store.close()
  })

  test('nothing new: the file is not written again', () => {
    const d = dir()
    const file = join(d, 'sessions.json')
    const store = new TlsSessionStore(file)
    store.save(true)
    expect(readdirSync(d)).toEqual([])
    store.keep('k', session(1), false)
    store.save()
    expect(JSON.parse(readFileSync(file, 'utf8')).sessions).toHaveLength(1)
    writeFileSync(file, 'marker')
    store.save(true)
    expect(readFileSync(file, 'utf8')).toBe('marker')
    store.keep('k2', session(2), false)
    store.save()
    expect(JSON.parse(readFileSync(file, 'utf8')).sessions).toHaveLength(2)
    store.close()
  })

  test("siblings' files are imported once each, for agents without a session here", () => {
    const d = dir()
    const dead = new TlsSessionStore(sessionFileFor(d, 'dead'))
    dead.keep('a', session(1), false)
    dead.keep('b', session(2), false)
    dead.close()
    writeFileSync(
      join(d, 'unrelated.json'),
      JSON.stringify({ v: 1, sessions: [['c', 'AA', Date.now()]] }),
    )
    const own = sessionFileFor(d, 'survivor')
    const survivor = new TlsSessionStore(own)
    survivor.keep('a', session(9), false)
    expect(survivor.importSiblings()).toBe(1) // 'b'; 'a' is ours already
    expect(survivor.get('a')).toEqual(session(9))
    expect(survivor.importSiblings()).toBe(0) // unchanged files are not read again
    survivor.close()
    const kept = JSON.parse(readFileSync(own, 'utf8')).sessions.map((e: unknown[]) => e[0])
    expect(kept.sort()).toEqual(['a', 'b'])
    expect(new TlsSessionStore().importSiblings()).toBe(0) // no file, no siblings
  })
})
