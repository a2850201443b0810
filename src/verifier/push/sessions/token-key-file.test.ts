import { describe, expect, test } from 'bun:test'
import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTokenKey, tokenKeyPath } from './token-key-file.ts'

describe('session token key file', () => {
  test('created once (0600), then read back the same; concurrent starts share one key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kl-tokkey-'))
    const path = tokenKeyPath('default', dir)
    expect(path).toBe(join(dir, 'session-token.key'))
    const [a, b] = await Promise.all([loadTokenKey(path), loadTokenKey(path)])
    expect([a.created, b.created].filter(Boolean).length).toBeLessThanOrEqual(1)
    expect(Buffer.from(a.key).equals(Buffer.from(b.key))).toBe(true)
    expect(a.key.byteLength).toBe(32)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    const again = await loadTokenKey(path)
    expect(again.created).toBe(false)
    expect(Buffer.from(again.key).equals(Buffer.from(a.key))).toBe(true)
    expect(again.exposed).toBe(false)
    chmodSync(path, 0o644)
    expect((await loadTokenKey(path)).exposed).toBe(true)
  })

  test('a relative option is under KEYLIME_DIR; a file that is no key is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kl-tokkey-'))
    expect(tokenKeyPath('keys/t.key', dir)).toBe(join(dir, 'keys/t.key'))
    expect(tokenKeyPath('/etc/keylime/t.key', dir)).toBe('/etc/keylime/t.key')
    const bad = join(dir, 'bad.key')
    writeFileSync(bad, 'not hex\n', { mode: 0o600 })
    await expect(loadTokenKey(bad)).rejects.toMatchObject({ code: 'ERR_SESSION_TOKEN_KEY' })
  })
})
