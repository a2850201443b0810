/**
 * The verifier's steady-state database write alone: `VerifierStore.writeSnapshots` of the
 * columns a passing round changes, in 1,000-row batches as the attestation loop flushes them,
 * over agent rows of realistic width (~2 KB: certificates, keys, policies). Prints CPU µs per
 * written row of this process (with PGlite: the embedded database's work included) and how many
 * of the updates PostgreSQL made heap-only (HOT), with the table size afterwards.
 *
 *   bun bench/verifier-writes.ts [--agents 10000] [--rounds 10] [--db postgresql://…]
 *
 * Without `--db` it runs on PGlite in a temporary `KEYLIME_DIR`; with `--db` a scratch database
 * is created on that server and dropped at the end.
 *
 * @module
 */
import { parseArgs } from 'node:util'
import { sql } from 'drizzle-orm'
import { openDatabase } from '../src/db/open-database.ts'
import { VerifierStore } from '../src/verifier/store/store.ts'
import { freshPglite, scratchPostgres } from '../test/support/databases.ts'
import { roundSnapshots, verifiermainUpdateStats } from '../test/support/round-snapshots.ts'

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '10' },
    db: { type: 'string', default: '' },
  },
})
const agents = Math.max(1000, Math.min(100_000, Number(values.agents)))
const rounds = Math.max(1, Math.min(100, Number(values.rounds)))
const BATCH = 1000

const location = values.db ? await scratchPostgres(values.db) : await freshPglite()
const kdb = await openDatabase({
  url: location.url,
  keylimeDir: location.keylimeDir,
  shared: false,
})
try {
  const db = kdb.db
  const text = (n: number, c: string) => c.repeat(n)
  for (let i = 0; i < agents; i += 500) {
    const rows = []
    for (let j = i; j < Math.min(agents, i + 500); j++) {
      rows.push(sql`(${`agent-${j}`}, ${text(44, 'v')}, '127.0.0.1', ${10_000 + j}, 3,
        ${text(180, 'p')}, '{"mask":"0x0"}'::jsonb, '{}', ${text(450, 'r')},
        '["sha256"]'::jsonb, '["rsa","ecc"]'::jsonb, '["rsassa","ecdsa"]'::jsonb,
        'sha256', 'ecc', 'ecdsa', 'default', '2.2', ${text(160, 'a')}, ${text(700, 'm')},
        1, 0, 0, '{"clock":1}'::jsonb, 'bench', 0)`)
    }
    await db.execute(sql`INSERT INTO verifiermain (agent_id, v, ip, port, operational_state,
      public_key, tpm_policy, meta_data, revocation_key, accept_tpm_hash_algs,
      accept_tpm_encryption_algs, accept_tpm_signing_algs, hash_alg, enc_alg, sign_alg,
      verifier_id, supported_version, ak_tpm, mtls_cert, attestation_count, last_received_quote,
      last_successful_attestation, tpm_clockinfo, lease_owner, lease_expires)
      VALUES ${sql.join(rows, sql`, `)}`)
  }
  const store = new VerifierStore(db)
  let n = 0
  const pass = async (times: number) => {
    for (let r = 0; r < times; r++) {
      for (let i = 0; i < agents; i += BATCH) {
        const ids = []
        for (let j = i; j < Math.min(agents, i + BATCH); j++) ids.push(`agent-${j}`)
        n++
        const snaps = roundSnapshots(ids, n)
        const missed = await store.writeSnapshots('bench', snaps, Date.now() + 6_000, true)
        if (missed.length > 0) throw new Error(`${missed.length} rows not written`)
      }
    }
  }
  await pass(2)
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await pass(rounds)
  const c = process.cpuUsage(c0)
  const written = rounds * agents
  const row = await verifiermainUpdateStats(db)
  console.log(
    JSON.stringify({
      db: kdb.kind,
      agents,
      rows_written: written,
      cpu_us_per_row: +((c.user + c.system) / written).toFixed(2),
      wall_us_per_row: +(((performance.now() - t0) * 1000) / written).toFixed(2),
      hot_update_share: +(row.hot / Math.max(1, row.upd)).toFixed(2),
      table_mib: Math.round(row.bytes / 2 ** 20),
    }),
  )
} finally {
  await kdb.close()
  await location.drop()
}
