import { afterEach, describe, expect, test } from 'bun:test'
import { createServer, type Server, type Socket } from 'node:net'
import postgres from 'postgres'
import { PostgresGuard } from './guard-postgres.ts'

/** A TCP server on 127.0.0.1 that does `onSocket` with each connection it accepts. */
async function server(onSocket: (s: Socket) => void) {
  const sockets: Socket[] = []
  let closed = 0
  const srv: Server = createServer((s) => {
    sockets.push(s)
    s.on('error', () => {})
    s.on('close', () => closed++)
    onSocket(s)
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  return {
    url: `postgresql://u@127.0.0.1:${port}/db`,
    sockets,
    get closed() {
      return closed
    },
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise<void>((r) => srv.close(() => r()))
    },
  }
}

const open: { end(o: { timeout: number }): Promise<void> }[] = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.end({ timeout: 0 })
})

function guarded(url: string, timeoutMs: number, reports: unknown[] = []) {
  const guard = new PostgresGuard({ timeoutMs, report: (e) => reports.push(e ?? 'ok') })
  const client = postgres(url, { max: 2, onnotice: () => {}, ...(guard.clientOptions as object) })
  open.push(client)
  return { guard, sql: guard.wrap(client) }
}

describe('PostgresGuard', () => {
  test('a server that never answers: ERR_DB_UNAVAILABLE after the timeout, pool reset', async () => {
    const s = await server((sock) => sock.resume()) // reads, never answers
    try {
      const reports: unknown[] = []
      const { guard, sql } = guarded(s.url, 300, reports)
      const started = performance.now()
      const err = await sql.unsafe('select 1').catch((e: unknown) => e)
      const ms = performance.now() - started
      expect(err).toMatchObject({ code: 'ERR_DB_UNAVAILABLE', status: 503 })
      expect(ms).toBeGreaterThanOrEqual(290)
      expect(ms).toBeLessThan(1500)
      expect(guard.resets).toBe(1)
      expect(reports).toEqual([err])
      await Bun.sleep(50)
      expect(s.closed).toBe(s.sockets.length) // the client let go of every connection
    } finally {
      await s.close()
    }
  })

  test('a server that closes before answering: fails at once and is not retried later', async () => {
    const s = await server((sock) => sock.end())
    try {
      const { sql } = guarded(s.url, 5000)
      const started = performance.now()
      const err = await sql.unsafe('insert into t values (1)').catch((e: unknown) => e)
      expect(performance.now() - started).toBeLessThan(1000)
      expect(err).toMatchObject({ code: 'CONNECTION_CLOSED' })
      const accepted = s.sockets.length
      await Bun.sleep(500)
      expect(s.sockets.length).toBe(accepted) // postgres.js did not reconnect to re-run it
    } finally {
      await s.close()
    }
  })

  const url = process.env.TEST_DATABASE_URL
  test.skipIf(!url)(
    'PostgreSQL: a transaction out of time is rolled back, not committed',
    async () => {
      const admin = postgres(url as string, { max: 1, onnotice: () => {} })
      open.push(admin)
      const table = `kl_guard_${process.pid}_${Date.now()}`
      await admin.unsafe(`create table ${table} (a int)`)
      try {
        const { guard, sql } = guarded(url as string, 400)
        const err = await sql
          .begin(async (tx) => {
            await tx.unsafe(`insert into ${table} values (1)`)
            await tx.unsafe('select pg_sleep(1)')
          })
          .catch((e: unknown) => e)
        expect(err).toMatchObject({ code: 'ERR_DB_UNAVAILABLE' })
        expect(guard.resets).toBe(1)
        await Bun.sleep(1200)
        const [count] = await admin.unsafe(`select count(*)::int as n from ${table}`)
        expect(count?.n).toBe(0)
        const [row] = await sql.unsafe('select 1 as x') // the pool serves again
        expect(row?.x).toBe(1)
      } finally {
        await admin.unsafe(`drop table ${table}`)
      }
    },
  )

  test.skipIf(!url)('database_timeout = 0: no bound, outcomes still reported', async () => {
    const reports: unknown[] = []
    const { sql } = guarded(url as string, 0, reports)
    const [row] = await sql.unsafe('select 2 as x')
    expect(row?.x).toBe(2)
    expect(reports).toEqual(['ok'])
  })
})
