/**
 * The steady-state write of the attestation loop (`VerifierStore.writeSnapshots` of the round
 * columns) must stay a heap-only (HOT) update of `verifiermain`: no index may cover a column a
 * round writes (migration 0003 replaced the `(verifier_id, lease_expires)` index) and pages keep
 * room for the new row version (fillfactor 80). Otherwise every round writes a ~2 KB row version
 * plus index entries, on PGlite inside the verifier's own process (`bench/verifier-writes.ts`).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { sql } from 'drizzle-orm'
import { type KeylimeDatabase, queryRows } from '../src/db/index.ts'
import { VerifierStore } from '../src/verifier/store/store.ts'
import { databaseTargets } from './support/databases.ts'
import { roundSnapshots, verifiermainUpdateStats } from './support/round-snapshots.ts'

const AGENTS = 200
const ids = Array.from({ length: AGENTS }, (_, i) => `hot-${i}`)

for (const target of databaseTargets()) {
  describe(`verifier round writes (${target.name})`, () => {
    let kdb: KeylimeDatabase

    beforeAll(async () => {
      kdb = await target.open()
      const wide = (n: number, c: string) => c.repeat(n)
      const rows = []
      for (let i = 0; i < AGENTS; i++) {
        rows.push(sql`(${`hot-${i}`}, 3, ${wide(450, 'p')}, ${wide(700, 'm')}, ${wide(450, 'r')},
          'default', 'me', 0)`)
      }
      await kdb.db.execute(sql`INSERT INTO verifiermain (agent_id, operational_state, public_key,
        mtls_cert, revocation_key, verifier_id, lease_owner, lease_expires)
        VALUES ${sql.join(rows, sql`, `)}`)
    })

    afterAll(async () => {
      await kdb?.close()
    })

    test('rounds update verifiermain heap-only, lease included', async () => {
      const store = new VerifierStore(kdb.db)
      const before = await verifiermainUpdateStats(kdb.db)
      for (let round = 1; round <= 3; round++) {
        const snaps = roundSnapshots(ids, round)
        expect(await store.writeSnapshots('me', snaps, Date.now() + 6_000 * round, true)).toEqual(
          [],
        )
      }
      const after = await verifiermainUpdateStats(kdb.db)
      const updates = after.upd - before.upd
      expect(updates).toBe(3 * AGENTS)
      // with the old lease index every one of these was a non-HOT update
      expect((after.hot - before.hot) / updates).toBeGreaterThan(0.3)
      const [r] = await queryRows<{ n: number }>(
        kdb.db,
        sql`SELECT count(*)::int AS n FROM verifiermain WHERE attestation_count = 3`,
      )
      expect(Number(r?.n)).toBe(AGENTS)
    })
  })
}
