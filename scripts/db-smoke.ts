/**
 * Smoke test of the database layer inside a compiled binary: opens the embedded database in a
 * temporary directory, migrates, writes and reads a `registrarmain` row, closes, and prints one
 * JSON line with timings. Exit code 0 on success. With a directory argument it uses (and keeps)
 * that `KEYLIME_DIR`, so a second run measures a cold-process reopen.
 *
 * ```sh
 * bun build --compile scripts/db-smoke.ts --outfile /tmp/db-smoke
 * mkdir -p /tmp/x && cp /tmp/db-smoke /tmp/x/ && cd /tmp/x && ./db-smoke
 * ```
 *
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eq } from 'drizzle-orm'
import { openDatabase, registrarmain } from '../src/db/index.ts'

/** Runs the smoke test; returns what it measured. */
export async function runDbSmoke(keylimeDir: string): Promise<Record<string, unknown>> {
  const t0 = performance.now()
  const first = await openDatabase({ url: '', keylimeDir })
  const firstOpenMs = Math.round(performance.now() - t0)
  await first.db
    .insert(registrarmain)
    .values({
      agent_id: 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000',
      active: true,
      virtual: false,
      regcount: 1,
      provider_keys: { smoke: true },
    })
    .onConflictDoNothing()
  await first.close()
  const t1 = performance.now()
  const again = await openDatabase({ url: '', keylimeDir })
  const reopenMs = Math.round(performance.now() - t1)
  const rows = await again.db
    .select()
    .from(registrarmain)
    .where(eq(registrarmain.agent_id, 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'))
  await again.close()
  const row = rows[0]
  if (row?.active !== true || row.regcount !== 1) throw new Error('row did not round-trip')
  return {
    ok: true,
    standalone: Bun.isStandaloneExecutable,
    first_open_ms: firstOpenMs,
    reopen_ms: reopenMs,
    provider_keys: row.provider_keys,
  }
}

if (import.meta.main) {
  const given = process.argv[2]
  const dir = given ?? mkdtempSync(join(tmpdir(), 'keylime-db-smoke-'))
  try {
    console.log(JSON.stringify(await runDbSmoke(dir)))
  } finally {
    if (given === undefined) rmSync(dir, { recursive: true, force: true })
  }
}
