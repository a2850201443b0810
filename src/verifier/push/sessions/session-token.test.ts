import { describe, expect, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { newSessionToken, TokenHasher, tokenSessionId } from './session-token.ts'

describe('session tokens', () => {
  test('<uuid>.<43 base64url characters>, and the session id read back', () => {
    const id = randomUUID()
    const token = newSessionToken(id)
    expect(token).toMatch(new RegExp(`^${id}\\.[A-Za-z0-9_-]{43}$`))
    expect(tokenSessionId(token)).toBe(id)
    expect(newSessionToken(id)).not.toBe(token)
  })

  test('malformed tokens have no session id (no database read for them)', () => {
    const id = randomUUID()
    for (const bad of [
      '',
      id,
      `${id}.`,
      `${id}.short`,
      `not-a-uuid.${'A'.repeat(43)}`,
      `${id}.${'A'.repeat(40)}!!!`,
      `${id}.${'A'.repeat(200)}`,
      `${id}.${'A'.repeat(43)}.extra`,
    ]) {
      expect(tokenSessionId(bad)).toBeUndefined()
    }
  })

  test('HMAC under the key: matches its token only, and another key gives another hash', () => {
    const key = randomBytes(32)
    const h = new TokenHasher(key)
    const token = newSessionToken(randomUUID())
    const stored = h.hash(token)
    expect(stored).toMatch(/^[0-9a-f]{64}$/)
    expect(stored).not.toContain(token.split('.')[1])
    expect(h.matches(token, stored)).toBe(true)
    expect(h.matches(`${token}x`, stored)).toBe(false)
    expect(h.matches(token, '')).toBe(false) // a pending session has no hash
    expect(h.matches(token, 'zz'.repeat(32))).toBe(false)
    const other = new TokenHasher(randomBytes(32))
    expect(other.matches(token, stored)).toBe(false)
    expect(other.keyId).not.toBe(h.keyId)
    expect(new TokenHasher(key).keyId).toBe(h.keyId)
    expect(h.keyId).toMatch(/^[0-9a-f]{16}$/)
    expect(() => new TokenHasher(randomBytes(16))).toThrow()
  })
})
