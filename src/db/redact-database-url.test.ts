import { describe, expect, test } from 'bun:test'
import { redactDatabaseUrl } from './redact-database-url.ts'

describe('redactDatabaseUrl', () => {
  test('replaces the password and keeps the rest', () => {
    expect(redactDatabaseUrl('postgresql://kl:s3cret@db:5432/keylime?sslmode=require')).toBe(
      'postgresql://kl:***@db:5432/keylime?sslmode=require',
    )
  })

  test('redacts a percent-encoded password and a password query parameter', () => {
    const out = redactDatabaseUrl('postgresql://kl:p%40ss%3Aw@db/k?password=other&user=kl')
    expect(out).not.toContain('p%40ss')
    expect(out).not.toContain('other')
    expect(out).toContain('user=kl')
  })

  test('leaves URLs without credentials alone', () => {
    expect(redactDatabaseUrl('postgresql://db/keylime')).toBe('postgresql://db/keylime')
    expect(redactDatabaseUrl('postgresql://kl@db/keylime')).toBe('postgresql://kl@db/keylime')
  })

  test('never echoes an unparsable URL', () => {
    expect(redactDatabaseUrl('postgresql://kl:secret@[::1/x')).toBe('postgresql://[unparsable]')
    expect(redactDatabaseUrl('kl:secret junk')).not.toContain('secret')
  })
})
