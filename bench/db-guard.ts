/**
 * What the PostgreSQL statement guard (`src/db/guard-postgres.ts`: a timer per statement, a
 * thenable wrapper, our own sockets) costs: the same drizzle statement (`select` of one
 * `verifiermain`-sized row by key) through `openDatabase` (guarded) and through drizzle on a plain
 * postgres.js client, alternating, sequential and 16 at a time. Prints CPU µs and wall µs per
 * statement of this process (the server's work is not included).
 *
 *   bun bench/db-guard.ts --db postgresql://postgres@127.0.0.1:5432/postgres [--n 20000]
 *
 * A scratch database is created on that server and dropped at the end.
 *
 * @module
 */
import { parseArgs } from 'node:util'
import { eq } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { type Db, openDatabase, verifiermain } from '../src/db/index.ts'
import * as schema from '../src/db/schema.ts'
import { scratchPostgres } from '../test/support/databases.ts'

const { values } = parseArgs({
  options: {
    db: { type: 'string', default: process.env.TEST_DATABASE_URL ?? '' },
    n: { type: 'string', default: '20000' },
  },
})
if (!values.db) throw new Error('--db postgresql://… (or TEST_DATABASE_URL) is required')
const n = Math.max(1000, Math.min(1_000_000, Number(values.n)))

const location = await scratchPostgres(values.db)
const guarded = await openDatabase({
  url: location.url,
  keylimeDir: location.keylimeDir,
  shared: false,
})
const client = postgres(location.url, { max: 15, onnotice: () => {} })
const plain = drizzle({ client, schema }) as unknown as Db
try {
  await guarded.db.insert(verifiermain).values({ agent_id: 'bench', v: 'v'.repeat(44) })
  const one = (db: Db) => db.select().from(verifiermain).where(eq(verifiermain.agent_id, 'bench'))

  async function run(db: Db, concurrency: number): Promise<{ cpu: number; wall: number }> {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    let next = 0
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next++ < n) await one(db)
      }),
    )
    const cpu = process.cpuUsage(c0)
    return { cpu: (cpu.user + cpu.system) / n, wall: ((performance.now() - t0) * 1000) / n }
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
  for (const concurrency of [1, 16]) {
    await run(plain, concurrency) // warm-up
    await run(guarded.db, concurrency)
    const g: { cpu: number; wall: number }[] = []
    const p: { cpu: number; wall: number }[] = []
    for (let round = 0; round < 5; round++) {
      p.push(await run(plain, concurrency))
      g.push(await run(guarded.db, concurrency))
    }
    const line = (what: string, xs: { cpu: number; wall: number }[]) =>
      `${what.padEnd(8)} concurrency ${String(concurrency).padStart(2)}: ` +
      `${median(xs.map((x) => x.cpu)).toFixed(1)} µs CPU, ${median(xs.map((x) => x.wall)).toFixed(1)} µs wall per statement (median of 5 × ${n})`
    console.log(line('plain', p))
    console.log(line('guarded', g))
  }
} finally {
  await client.end({ timeout: 5 })
  await guarded.close()
  await location.drop()
}
