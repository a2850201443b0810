import { describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { sql } from 'drizzle-orm'
import { vacuumDeadTuples } from './embedded-vacuum.ts'
import { openDatabase } from './open-database.ts'
import { queryRows } from './query-rows.ts'

type Query = (q: string) => Promise<{ n: number }[]>

/** A counter of `table` in pg_stat_user_tables (statistics flush at most once a second). */
async function stat(query: Query, table: string, column: 'n_dead_tup' | 'vacuum_count') {
  const rows = await query(
    `SELECT ${column}::int AS n FROM pg_stat_user_tables WHERE relname = '${table}'`,
  )
  return rows[0]?.n ?? -1
}

describe('embedded vacuum', () => {
  test('vacuums only tables past the autovacuum threshold', async () => {
    const pg = await PGlite.create()
    const query = async (q: string) => (await pg.query<{ n: number }>(q)).rows
    await pg.exec(`CREATE TABLE "churn""y" (id int primary key, n int);
      INSERT INTO "churn""y" SELECT g, 0 FROM generate_series(1, 500) g;
      CREATE TABLE calm (id int primary key, n int);
      INSERT INTO calm SELECT g, 0 FROM generate_series(1, 500) g;`)
    for (let k = 1; k <= 3; k++) await pg.exec(`UPDATE "churn""y" SET n = ${k}`)
    await pg.exec('UPDATE calm SET n = 1 WHERE id <= 10') // 10 dead: under 50 + 20 % of 500
    await Bun.sleep(1100)
    await pg.exec('SELECT 1') // lets the statistics flush
    expect(await stat(query, 'churn"y', 'n_dead_tup')).toBeGreaterThanOrEqual(1000)
    expect(await vacuumDeadTuples(pg)).toEqual(['churn"y'])
    expect(await stat(query, 'churn"y', 'n_dead_tup')).toBe(0)
    expect(await stat(query, 'churn"y', 'vacuum_count')).toBe(1)
    expect(await stat(query, 'calm', 'n_dead_tup')).toBe(10)
    expect(await stat(query, 'calm', 'vacuum_count')).toBe(0)
    await pg.close()
  })

  test('an embedded database opened by openDatabase vacuums itself', async () => {
    const kdb = await openDatabase({
      url: '',
      keylimeDir: mkdtempSync(join(tmpdir(), 'kl-vacuum-')),
      shared: false,
      embeddedVacuumMs: 100,
    })
    const query: Query = (q) => queryRows<{ n: number }>(kdb.db, sql.raw(q))
    await kdb.db.execute(sql.raw('CREATE TABLE churn (id int primary key, n int)'))
    await kdb.db.execute(sql.raw('INSERT INTO churn SELECT g, 0 FROM generate_series(1, 200) g'))
    for (let k = 1; k <= 5; k++) await kdb.db.execute(sql.raw(`UPDATE churn SET n = ${k}`))
    let vacuums = 0
    for (let i = 0; i < 60 && vacuums === 0; i++) {
      await Bun.sleep(100)
      vacuums = await stat(query, 'churn', 'vacuum_count')
    }
    expect(vacuums).toBeGreaterThan(0)
    await kdb.close()
  }, 15_000)
})
