import { describe, expect, test } from 'bun:test'
import { tmpdir } from 'node:os'
import { sql } from 'drizzle-orm'
import postgres from 'postgres'
import { openDatabase } from '../db/index.ts'
import { KeylimeError } from '../errors.ts'
import { describeError, describeServerMessage, stackFrames } from './describe-error.ts'

const SECRET = 'S3cr3tV4lue+/Zq=='

/** Errors as the two drivers raise them, through drizzle, for statements that quote SECRET. */
async function driverErrors(db: Awaited<ReturnType<typeof openDatabase>>['db']) {
  const out: unknown[] = []
  for (const q of [
    sql`select ${SECRET}::json`,
    sql`select ${SECRET}::int`,
    sql`select ${`bad\u0000`}::text`,
    sql.raw(
      `do $$ begin raise exception 'rejected %', '${SECRET}' using detail = '${SECRET}', hint = '${SECRET}'; end $$`,
    ),
    sql.raw(`do $$ begin raise exception using errcode = '23514', message = '${SECRET}'; end $$`),
    sql.raw(`select 1/0 where '${SECRET}' <> ''`),
  ]) {
    try {
      await db.execute(q)
      out.push(new Error('no error'))
    } catch (e) {
      out.push(e)
    }
  }
  return out
}

describe('describeError', () => {
  test('PGlite errors through drizzle: code and safe text, never the parameters', async () => {
    const kdb = await openDatabase({ url: 'memory://', keylimeDir: tmpdir(), autoMigrate: false })
    try {
      const errors = await driverErrors(kdb.db)
      const texts = errors.map(describeError)
      for (const t of texts) {
        expect(t).not.toContain('S3cr3t')
        expect(t).not.toContain('params')
        expect(t).toStartWith('database query failed; cause: ERROR ')
      }
      expect(texts[0]).toContain('22P02: invalid input syntax for type json')
      expect(texts[3]).toContain('P0001: raised by a database function')
      expect(texts[5]).toContain('22012: division by zero')
    } finally {
      await kdb.close()
    }
  })

  test('postgres.js server and connection errors', async () => {
    const url = process.env.TEST_DATABASE_URL
    if (url) {
      const client = postgres(url, { max: 1, onnotice: () => {} })
      try {
        await client.unsafe('select $1::json', [SECRET])
      } catch (e) {
        const t = describeError(e)
        expect(t).toContain('ERROR 22P02: invalid input syntax for type json')
        expect(t).not.toContain('S3cr3t')
      } finally {
        await client.end({ timeout: 1 })
      }
    }
    const refused = postgres('postgresql://u@127.0.0.1:1/x', { max: 1, connect_timeout: 2 })
    const err = await refused.unsafe('select $1', [SECRET]).catch((e: unknown) => e)
    await refused.end({ timeout: 0 })
    expect(describeError(err)).toContain('ECONNREFUSED')
    expect(describeError(err)).not.toContain('S3cr3t')
  })

  test('server fields: names kept, detail, where, hint and values dropped', () => {
    const e = Object.assign(
      new Error(`duplicate key value violates unique constraint "verifiermain_pkey"`),
      {
        severity: 'ERROR',
        code: '23505',
        detail: `Key (agent_id)=(${SECRET}) already exists.`,
        where: `SQL statement "insert … '${SECRET}'"`,
        hint: SECRET,
        table_name: 'verifiermain',
        constraint_name: 'verifiermain_pkey',
        routine: '_bt_check_unique',
        query: `insert … '${SECRET}'`,
        parameters: [SECRET],
      },
    )
    expect(describeError(e)).toBe(
      'ERROR 23505: duplicate key value violates unique constraint "verifiermain_pkey" (table=verifiermain, constraint=verifiermain_pkey, routine=_bt_check_unique)',
    )
    expect(
      describeServerMessage({
        code: '22P02',
        message: `invalid input value for enum x: "${SECRET}"`,
      }),
    ).toBe('ERROR 22P02: invalid input value for enum x')
    expect(describeServerMessage({ code: '42601', message: `syntax error at "${SECRET}"` })).toBe(
      'ERROR 42601: syntax error at "…"',
    )
  })

  test('drizzle query errors, causes, KeylimeErrors and other thrown values', () => {
    const drizzleLike = Object.assign(new Error(`Failed query: insert\nparams: ${SECRET}`), {
      query: 'insert',
      params: [SECRET],
    })
    const wrapped = new KeylimeError('ERR_X', 'enrolment failed', { cause: drizzleLike })
    expect(describeError(wrapped)).toBe(
      'KeylimeError [ERR_X]: enrolment failed; cause: database query failed',
    )
    expect(describeError(new TypeError(`bad value '${SECRET}'`))).toBe('TypeError: bad value "…"')
    expect(describeError(new Error(`line one\n${SECRET}`))).toBe('Error: line one')
    expect(describeError({ toString: 1, v: SECRET })).toBe('a thrown Object')
    expect(describeError(Object.create(null))).toBe('a thrown object')
    expect(describeError('plain')).toBe('plain')
    expect(describeError(null)).toBe('null')
    const sys = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
      code: 'ECONNREFUSED',
    })
    expect(describeError(sys)).toBe('Error: connect ECONNREFUSED 127.0.0.1:5432')
    const loop: Error & { cause?: unknown } = new Error('a')
    loop.cause = loop
    expect(describeError(loop)).toBe('Error: a')
    const hostile = new Proxy(new Error('x'), {
      get() {
        throw new Error('trap')
      },
    })
    expect(typeof describeError(hostile)).toBe('string')
    expect(describeError(new Error('x'.repeat(10_000))).length).toBeLessThan(400)
  })

  test('stackFrames keeps frames only', () => {
    const e = new Error(`Failed query: x\nparams: ${SECRET}`)
    const frames = stackFrames(e) ?? ''
    expect(frames).toContain('at ')
    expect(frames).not.toContain('S3cr3t')
    expect(stackFrames('nope')).toBeUndefined()
  })
})
