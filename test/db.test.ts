/**
 * The database layer on every target of `test/support/databases.ts` (PGlite always, PostgreSQL
 * when configured): migrations, column types, constraints, persistence, sharing, locking.
 *
 * @module
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eq, getTableName, is, sql } from 'drizzle-orm'
import { PgTable } from 'drizzle-orm/pg-core'
import * as schema from '../src/db/schema.ts'
import {
  allowlists,
  attestations,
  type Db,
  evidence_items,
  type KeylimeDatabase,
  mbpolicies,
  openDatabase,
  pingDatabase,
  queryRows,
  registrarmain,
  sessions,
  verifiermain,
} from '../src/db/index.ts'
import { embeddedMigrations } from '../src/db/embedded-migrations.ts'
import { setLogSink } from '../src/log/logger.ts'
import { databaseTargets } from './support/databases.ts'

/** Upstream Keylime's tables (Alembic head a59cc9366774); our schema adds its own beside them. */
const UPSTREAM_TABLES = [
  'allowlists',
  'attestations',
  'evidence_items',
  'mbpolicies',
  'registrarmain',
  'sessions',
  'verifiermain',
]

/** Every table the drizzle schema declares, sorted: what the migrations must create. */
const TABLES = Object.values(schema as Record<string, unknown>)
  .filter((t): t is PgTable => is(t, PgTable))
  .map((t) => getTableName(t))
  .sort()

const cleanups: (() => void)[] = []
afterAll(() => {
  for (const fn of cleanups) fn()
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'keylime-db-it-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function publicTables(db: Db): Promise<string[]> {
  const list = await queryRows<{ table_name: string }>(
    db,
    sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
  )
  return list.map((r) => r.table_name).sort()
}

async function migrationCount(db: Db): Promise<number> {
  const [row] = await queryRows<{ n: number | string }>(
    db,
    sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
  )
  return Number(row?.n)
}

/** The SQLSTATE of a driver error, looking through drizzle's wrapper. */
function sqlState(error: unknown): string | undefined {
  for (let e: unknown = error; e instanceof Error || (e && typeof e === 'object');) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code
    e = (e as { cause?: unknown }).cause
    if (e === undefined) break
  }
  return undefined
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

async function withDb(open: () => Promise<KeylimeDatabase>, fn: (db: Db) => Promise<void>) {
  const kdb = await open()
  try {
    await fn(kdb.db)
  } finally {
    await kdb.close()
  }
}

for (const target of databaseTargets()) {
  describe(target.name, () => {
    test('migrations create the upstream tables and ours, and record each migration once', async () => {
      expect(TABLES).toEqual(expect.arrayContaining(UPSTREAM_TABLES))
      await withDb(target.open, async (db) => {
        expect(await publicTables(db)).toEqual(TABLES)
        expect(await migrationCount(db)).toBe(embeddedMigrations().length)
      })
    })

    test('reopening runs no migration twice and keeps data', async () => {
      const loc = await target.freshLocation()
      try {
        const first = await openDatabase({
          url: loc.url,
          keylimeDir: loc.keylimeDir,
          shared: false,
        })
        await first.db.insert(registrarmain).values({ agent_id: 'agent-1', regcount: 3 })
        await first.close()
        const second = await openDatabase({
          url: loc.url,
          keylimeDir: loc.keylimeDir,
          shared: false,
        })
        try {
          expect(await migrationCount(second.db)).toBe(embeddedMigrations().length)
          const found = await second.db.select().from(registrarmain)
          expect(found.map((r) => [r.agent_id, r.regcount])).toEqual([['agent-1', 3]])
        } finally {
          await second.close()
        }
      } finally {
        await loc.drop()
      }
    })

    test('autoMigrate false leaves a fresh database empty', async () => {
      const loc = await target.freshLocation()
      try {
        const kdb = await openDatabase({
          url: loc.url,
          keylimeDir: loc.keylimeDir,
          shared: false,
          autoMigrate: false,
        })
        try {
          expect(await publicTables(kdb.db)).toEqual([])
        } finally {
          await kdb.close()
        }
      } finally {
        await loc.drop()
      }
    })

    test('verifiermain round-trips bytea, jsonb, boolean and bigint', async () => {
      await withDb(target.open, async (db) => {
        const pcr10 = new Uint8Array([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, 0])
        const tpmPolicy = { '15': ['0'.repeat(64)], mask: '0x8000' }
        const boottime = 4_102_444_800 // 2100-01-01, beyond int4
        const lastQuote = Number.MAX_SAFE_INTEGER
        await db.insert(verifiermain).values({
          agent_id: 'a1',
          pcr10,
          tpm_policy: tpmPolicy,
          ima_pcrs: [10],
          accept_tpm_hash_algs: ['sha512', 'sha384', 'sha256'],
          learned_ima_keyrings: {},
          tpm_clockinfo: { clock: 1234, resetCount: 0, restartCount: 1, safe: true },
          boottime,
          last_received_quote: lastQuote,
          operational_state: 3,
        })
        const [row] = await db.select().from(verifiermain).where(eq(verifiermain.agent_id, 'a1'))
        expect(row).toBeDefined()
        expect(row?.pcr10).toBeInstanceOf(Uint8Array)
        expect(Buffer.isBuffer(row?.pcr10)).toBe(false)
        expect([...(row?.pcr10 ?? [])]).toEqual([...pcr10])
        expect(row?.tpm_policy).toEqual(tpmPolicy)
        expect(row?.ima_pcrs).toEqual([10])
        expect(row?.accept_tpm_hash_algs).toEqual(['sha512', 'sha384', 'sha256'])
        expect(row?.tpm_clockinfo).toEqual({
          clock: 1234,
          resetCount: 0,
          restartCount: 1,
          safe: true,
        })
        expect(row?.boottime).toBe(boottime)
        expect(row?.last_received_quote).toBe(lastQuote)
        expect(row?.accept_attestations).toBe(true)
        expect(row?.supported_version).toBeNull()
        // jsonb must hold structured JSON, not a JSON string (a classic double-encoding bug).
        const [kinds] = await queryRows<{ policy: string; pcrs: string }>(
          db,
          sql`select jsonb_typeof(tpm_policy) as policy, jsonb_typeof(ima_pcrs) as pcrs from verifiermain`,
        )
        expect(kinds).toEqual({ policy: 'object', pcrs: 'array' })
        const [len] = await queryRows<{ n: number }>(
          db,
          sql`select octet_length(pcr10) as n from verifiermain`,
        )
        expect(Number(len?.n)).toBe(pcr10.length)
      })
    })

    test('registrarmain round-trips booleans, text and jsonb provider_keys', async () => {
      await withDb(target.open, async (db) => {
        const ekcert = 'MII'.padEnd(4000, 'A') // longer than upstream's old String(2048)
        await db.insert(registrarmain).values({
          agent_id: 'r1',
          active: false,
          virtual: true,
          ekcert,
          provider_keys: { aik: 'x', ek: 'y' },
          ip: '2001:db8::1',
          port: 9002,
        })
        await db.update(registrarmain).set({ active: true }).where(eq(registrarmain.agent_id, 'r1'))
        const [row] = await db.select().from(registrarmain)
        expect(row?.active).toBe(true)
        expect(row?.virtual).toBe(true)
        expect(row?.ekcert).toBe(ekcert)
        expect(row?.provider_keys).toEqual({ aik: 'x', ek: 'y' })
        expect(row?.port).toBe(9002)
      })
    })

    test('allowlists and mbpolicies names are unique (uniq_allowlists0name)', async () => {
      await withDb(target.open, async (db) => {
        const [first] = await db
          .insert(allowlists)
          .values({ name: 'policy', ima_policy: '{}', checksum: 'ab' })
          .returning({ id: allowlists.id })
        const [second] = await db
          .insert(allowlists)
          .values({ name: 'other' })
          .returning({ id: allowlists.id })
        expect(typeof first?.id).toBe('number')
        expect(second?.id).toBe((first?.id ?? 0) + 1)
        const error = await rejection(db.insert(allowlists).values({ name: 'policy' }))
        expect(sqlState(error)).toBe('23505')
        const [constraint] = await queryRows<{ conname: string }>(
          db,
          sql`select conname from pg_constraint where conrelid = 'allowlists'::regclass and contype = 'u'`,
        )
        expect(constraint?.conname).toBe('uniq_allowlists0name')
        await db.insert(mbpolicies).values({ name: 'mb' })
        expect(sqlState(await rejection(db.insert(mbpolicies).values({ name: 'mb' })))).toBe(
          '23505',
        )
      })
    })

    test('verifiermain policy ids must reference existing policies', async () => {
      await withDb(target.open, async (db) => {
        const error = await rejection(
          db.insert(verifiermain).values({ agent_id: 'x', ima_policy_id: 999 }),
        )
        expect(sqlState(error)).toBe('23503')
      })
    })

    test('push-mode tables: attestation defaults, evidence bytea, composite foreign key', async () => {
      await withDb(target.open, async (db) => {
        await db.insert(verifiermain).values({ agent_id: 'p1' })
        await db.insert(attestations).values({
          agent_id: 'p1',
          index: 0,
          system_info__boot_time: '2026-01-01T00:00:00.000000+00:00',
          capabilities_received_at: '2026-01-01T00:00:01.000000+00:00',
        })
        const [att] = await db.select().from(attestations)
        expect(att?.stage).toBe('awaiting_evidence')
        expect(att?.evaluation).toBe('pending')
        const challenge = new Uint8Array(32).fill(0xa5)
        await db.insert(evidence_items).values({
          agent_id: 'p1',
          attestation_index: 0,
          evidence_class: 'certification',
          evidence_type: 'tpm_quote',
          chosen_parameters__challenge: challenge,
          capabilities__supports_partial_access: false,
        })
        const [item] = await db.select().from(evidence_items)
        expect([...(item?.chosen_parameters__challenge ?? [])]).toEqual([...challenge])
        expect(item?.capabilities__supports_partial_access).toBe(false)
        const orphan = db.insert(evidence_items).values({
          agent_id: 'p1',
          attestation_index: 7,
          evidence_class: 'log',
          evidence_type: 'ima_log',
        })
        expect(sqlState(await rejection(orphan))).toBe('23503')
      })
    })

    test('sessions keep no foreign key to agents and are indexed by agent_id', async () => {
      await withDb(target.open, async (db) => {
        await db.insert(sessions).values({
          session_id: '8c7a1f0e-0000-4000-8000-000000000000',
          token_hash: 'f'.repeat(64),
          token_salt: '0'.repeat(32),
          agent_id: 'not-enrolled',
          nonce: new Uint8Array([1, 2, 3]),
          active: true,
        })
        const [s] = await db.select().from(sessions)
        expect([...(s?.nonce ?? [])]).toEqual([1, 2, 3])
        const [ix] = await queryRows<{ indexname: string }>(
          db,
          sql`select indexname from pg_indexes where tablename = 'sessions' and indexname = 'ix_sessions_agent_id'`,
        )
        expect(ix?.indexname).toBe('ix_sessions_agent_id')
      })
    })

    test('callers in one process share one instance, closed by the last', async () => {
      const loc = await target.freshLocation()
      try {
        const a = await openDatabase({ url: loc.url, keylimeDir: loc.keylimeDir })
        const b = await openDatabase({ url: loc.url, keylimeDir: loc.keylimeDir })
        expect(b.db).toBe(a.db)
        await a.close()
        await a.close() // idempotent: must not drop b's reference
        expect(await b.db.select().from(registrarmain)).toEqual([])
        await pingDatabase(b)
        await b.close()
        expect(await rejection(pingDatabase(b))).toBeInstanceOf(Error)
        const c = await openDatabase({ url: loc.url, keylimeDir: loc.keylimeDir })
        expect(c.db).not.toBe(a.db)
        await c.close()
      } finally {
        await loc.drop()
      }
    })

    if (target.name === 'postgresql') {
      test('two concurrent opens of a fresh database both succeed and migrate once', async () => {
        const loc = await target.freshLocation()
        try {
          const open = () =>
            openDatabase({ url: loc.url, keylimeDir: loc.keylimeDir, shared: false })
          const [a, b] = await Promise.all([open(), open()])
          try {
            expect(await publicTables(a.db)).toEqual(TABLES)
            expect(await migrationCount(b.db)).toBe(embeddedMigrations().length)
          } finally {
            await Promise.all([a.close(), b.close()])
          }
        } finally {
          await loc.drop()
        }
      }, 30_000)

      test('logs and location show the URL with its password redacted', async () => {
        const loc = await target.freshLocation()
        const url = new URL(loc.url)
        if (!url.password) url.password = 'sekrit-pw' // trust-auth servers ignore it
        const secret = url.password
        const lines: string[] = []
        const previous = setLogSink((line) => lines.push(line))
        try {
          const kdb = await openDatabase({ url: url.toString(), keylimeDir: loc.keylimeDir })
          await kdb.close()
          expect(kdb.location).toContain(':***@')
          expect(kdb.location).not.toContain(secret)
          expect(lines.some((line) => line.includes('using PostgreSQL'))).toBe(true)
          expect(lines.join('\n')).not.toContain(secret)
        } finally {
          setLogSink(previous)
          await loc.drop()
        }
      })

      test('an unreachable server is ERR_DB_OPEN without the password', async () => {
        const error = await rejection(
          openDatabase({
            url: 'postgresql://kl:hunter2@127.0.0.1:1/keylime',
            keylimeDir: tempDir(),
          }),
        )
        expect((error as { code?: string }).code).toBe('ERR_DB_OPEN')
        expect((error as Error).message).toContain('postgresql://kl:***@127.0.0.1:1/keylime')
        expect((error as Error).message).not.toContain('hunter2')
      })
    }
  })
}

describe('embedded directory', () => {
  // Start-up speed is measured by bench/startup.ts, not asserted here.
  test('first open of an empty KEYLIME_DIR: dirs are 0700; data survives reopen', async () => {
    const keylimeDir = join(tempDir(), 'kl')
    const t0 = performance.now()
    const first = await openDatabase({ url: '', keylimeDir })
    const firstMs = performance.now() - t0
    console.log(`embedded first open (empty dir, template + migrations): ${Math.round(firstMs)} ms`)
    expect(first.kind).toBe('pglite')
    expect(first.location).toBe(join(keylimeDir, 'pglite'))
    expect((await Bun.file(join(keylimeDir, 'pglite')).stat()).mode & 0o777).toBe(0o700)
    await first.db.insert(allowlists).values({ name: 'kept', ima_policy: '{"meta":{}}' })
    await first.close()
    expect(existsSync(join(keylimeDir, 'pglite', 'keylime-ts.lock'))).toBe(false)
    const t1 = performance.now()
    const again = await openDatabase({ url: 'sqlite', keylimeDir })
    console.log(`embedded reopen: ${Math.round(performance.now() - t1)} ms`)
    try {
      const kept = await again.db.select().from(allowlists)
      expect(kept.map((r) => r.name)).toEqual(['kept'])
    } finally {
      await again.close()
    }
  }, 30_000)

  test('sqlite:////path/x.sqlite opens a sibling .pglite directory', async () => {
    const dir = tempDir()
    const kdb = await openDatabase({ url: `sqlite:///${dir}/cv_data.sqlite`, keylimeDir: dir })
    try {
      expect(kdb.location).toBe(`${dir}/cv_data.pglite`)
      expect(existsSync(join(dir, 'cv_data.pglite', 'PG_VERSION'))).toBe(true)
      expect(existsSync(join(dir, 'cv_data.sqlite'))).toBe(false)
    } finally {
      await kdb.close()
    }
  }, 30_000)

  test('unsupported engines are refused before touching anything', async () => {
    const error = await rejection(
      openDatabase({ url: 'mysql+pymysql://keylime:pw@db/verifier', keylimeDir: tempDir() }),
    )
    expect((error as { code?: string }).code).toBe('ERR_DB_UNSUPPORTED')
  })

  test('a bad pool size is a typed error', async () => {
    const error = await rejection(
      openDatabase({ url: 'memory://', keylimeDir: tempDir(), poolSizeOverflow: [0, 10] }),
    )
    expect((error as { code?: string }).code).toBe('ERR_DB_CONFIG')
  })

  describe('a second process', () => {
    const dbIndex = join(import.meta.dir, '../src/db/index.ts')
    const childScript = join(tempDir(), 'open-db-child.ts')
    writeFileSync(
      childScript,
      `import { openDatabase } from ${JSON.stringify(dbIndex)}
const [dir, mode] = process.argv.slice(2)
try {
  const kdb = await openDatabase({ url: '', keylimeDir: dir })
  console.log(JSON.stringify({ ok: true }))
  if (mode === 'hold') await new Promise(() => {})
  await kdb.close()
} catch (error) {
  console.log(JSON.stringify({ code: error.code, message: error.message }))
}
`,
    )

    function lastJson(text: string): Record<string, unknown> {
      const line = text.trim().split('\n').at(-1) ?? '{}'
      return JSON.parse(line) as Record<string, unknown>
    }

    test('is refused while this process holds the embedded directory', async () => {
      const keylimeDir = tempDir()
      const kdb = await openDatabase({ url: '', keylimeDir })
      try {
        const child = Bun.spawn([process.execPath, childScript, keylimeDir], {
          stdout: 'pipe',
          stderr: 'pipe',
        })
        const out = await new Response(child.stdout).text()
        await child.exited
        const result = lastJson(out)
        expect(result.code).toBe('ERR_DB_LOCKED')
        expect(result.message).toBe(
          `embedded database ${join(keylimeDir, 'pglite')} is in use by pid ${process.pid}; run both roles in one process or configure database_url`,
        )
      } finally {
        await kdb.close()
      }
    }, 30_000)

    test('that died holding the directory does not block the next open', async () => {
      const keylimeDir = tempDir()
      const child = Bun.spawn([process.execPath, childScript, keylimeDir, 'hold'], {
        stdout: 'pipe',
        stderr: 'pipe',
      })
      const reader = child.stdout.getReader()
      let seen = ''
      while (!seen.includes('"ok":true')) {
        const chunk = await reader.read()
        if (chunk.done) break
        seen += new TextDecoder().decode(chunk.value)
      }
      expect(seen).toContain('"ok":true')
      const locked = await rejection(openDatabase({ url: '', keylimeDir }))
      expect((locked as { code?: string }).code).toBe('ERR_DB_LOCKED')
      child.kill('SIGKILL')
      await child.exited
      const kdb = await openDatabase({ url: '', keylimeDir })
      try {
        expect(await publicTables(kdb.db)).toEqual(TABLES)
      } finally {
        await kdb.close()
      }
    }, 30_000)
  })
})
