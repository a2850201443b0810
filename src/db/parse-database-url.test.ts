import { describe, expect, test } from 'bun:test'
import { DatabaseError } from './errors.ts'
import { parseDatabaseUrl } from './parse-database-url.ts'

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(DatabaseError)
    return (error as DatabaseError).code
  }
  return undefined
}

describe('parseDatabaseUrl', () => {
  test("'' and 'sqlite' select PGlite in <keylimeDir>/pglite", () => {
    for (const url of ['', '  ', 'sqlite', 'SQLITE']) {
      expect(parseDatabaseUrl(url, '/var/lib/keylime')).toEqual({
        kind: 'pglite',
        dataDir: '/var/lib/keylime/pglite',
        location: '/var/lib/keylime/pglite',
      })
    }
  })

  test('a relative keylimeDir is made absolute', () => {
    const target = parseDatabaseUrl('', 'kl')
    expect(target.kind === 'pglite' && target.dataDir?.startsWith('/')).toBe(true)
  })

  test('sqlite:////abs/x.sqlite maps to a sibling .pglite directory and remembers the file', () => {
    expect(parseDatabaseUrl('sqlite:////var/lib/keylime/cv_data.sqlite', '/k')).toEqual({
      kind: 'pglite',
      dataDir: '/var/lib/keylime/cv_data.pglite',
      location: '/var/lib/keylime/cv_data.pglite',
      sqliteFile: '/var/lib/keylime/cv_data.sqlite',
    })
  })

  test('sqlite:///relative.db is relative to the working directory, as in SQLAlchemy', () => {
    const target = parseDatabaseUrl('sqlite:///reg_data.db', '/k')
    expect(target).toMatchObject({ kind: 'pglite', dataDir: `${process.cwd()}/reg_data.pglite` })
  })

  test('memory:// and sqlite:///:memory: are in-memory PGlite', () => {
    expect(parseDatabaseUrl('memory://', '/k')).toEqual({
      kind: 'pglite',
      dataDir: null,
      location: 'memory://',
    })
    expect(parseDatabaseUrl('sqlite:///:memory:', '/k')).toMatchObject({ dataDir: null })
  })

  test('postgresql:// and postgres:// select postgres.js with a redacted location', () => {
    const a = parseDatabaseUrl('postgresql://kl:s3cret@db.example:5432/keylime', '/k')
    expect(a).toEqual({
      kind: 'postgres',
      url: 'postgresql://kl:s3cret@db.example:5432/keylime',
      location: 'postgresql://kl:***@db.example:5432/keylime',
    })
    const b = parseDatabaseUrl('postgres://kl@db/keylime', '/k')
    expect(b).toMatchObject({ kind: 'postgres', url: 'postgresql://kl@db/keylime' })
  })

  test('a SQLAlchemy driver suffix (postgresql+psycopg2) is dropped', () => {
    expect(parseDatabaseUrl('postgresql+psycopg2://u:p@h/d', '/k')).toMatchObject({
      kind: 'postgres',
      url: 'postgresql://u:p@h/d',
    })
  })

  test('MySQL and other engines are refused with ERR_DB_UNSUPPORTED', () => {
    for (const url of [
      'mysql+pymysql://keylime:keylime@host:3306/verifier?charset=utf8',
      'mysql://h/d',
      'mariadb://h/d',
      'oracle://h/d',
    ]) {
      expect(codeOf(() => parseDatabaseUrl(url, '/k'))).toBe('ERR_DB_UNSUPPORTED')
    }
  })

  test('the unsupported-engine message names the engine but never the password', () => {
    try {
      parseDatabaseUrl('mysql+pymysql://keylime:hunter2@host/verifier', '/k')
      throw new Error('no error')
    } catch (error) {
      expect((error as Error).message).toContain("'mysql'")
      expect((error as Error).message).not.toContain('hunter2')
    }
  })

  test('malformed URLs are ERR_DB_CONFIG without echoing secrets', () => {
    for (const url of [
      'not a url',
      'postgresql:kl:pw@host',
      'postgresql://u:pw@[bad/x',
      'sqlite://',
    ]) {
      const code = codeOf(() => parseDatabaseUrl(url, '/k'))
      expect(code === 'ERR_DB_CONFIG' || code === undefined).toBe(true)
    }
    expect(codeOf(() => parseDatabaseUrl('not a url', '/k'))).toBe('ERR_DB_CONFIG')
    // A long inner run of slashes is linear (was /\/+$/, quadratic: ~1.5 s at c9aa72c).
    const t0 = performance.now()
    expect(codeOf(() => parseDatabaseUrl(`sqlite:///?${'/'.repeat(64 * 1024)}x`, '/k'))).toBe(
      'ERR_DB_CONFIG',
    )
    expect(performance.now() - t0).toBeLessThan(100)
    try {
      parseDatabaseUrl('postgresql:kl:topsecret@host', '/k')
    } catch (error) {
      expect((error as Error).message).not.toContain('topsecret')
    }
  })
})
