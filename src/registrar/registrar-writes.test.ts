/**
 * RegistrarWrites on every database target, over a drizzle handle wrapped to count the statements
 * it builds: coalescing really happens, each caller gets its own row's outcome, and one bad row
 * falls back to single statements without failing the others. Also the service end to end: a
 * burst of registrations and activations costs far fewer statements than rows.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databaseTargets } from '../../test/support/databases.ts'
import { type Db, type KeylimeDatabase, registrarmain } from '../db/index.ts'
import { getLogger } from '../log/logger.ts'
import { type RegistrarValues, RegistrarWrites } from './registrar-writes.ts'
import { RegistrarService } from './service.ts'
import { makeSoftwareAk, makeSoftwareEk, SoftwareAgent } from '../../test/support/software-agent.ts'

const WRITES = ['insert', 'update', 'delete', 'select'] as const
type Counts = Record<(typeof WRITES)[number], number>

/** `db` with every insert/update/delete/select builder counted (one builder = one statement). */
function counted(db: Db): { db: Db; counts: Counts } {
  const counts: Counts = { insert: 0, update: 0, delete: 0, select: 0 }
  const wrapped = new Proxy(db, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown
      if (typeof value !== 'function') return value
      const name = WRITES.find((w) => w === prop)
      return (...args: unknown[]) => {
        if (name !== undefined) counts[name]++
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return { db: wrapped, counts }
}

function row(agentId: string, extra: Partial<RegistrarValues> = {}): RegistrarValues {
  return {
    agent_id: agentId,
    key: `key-${agentId}`,
    aik_tpm: 'AAAA',
    ekcert: null,
    ek_tpm: 'BBBB',
    iak_tpm: null,
    idevid_tpm: null,
    iak_cert: null,
    idevid_cert: null,
    mtls_cert: 'disabled',
    virtual: false,
    ip: '127.0.0.1',
    port: 9002,
    active: false,
    provider_keys: {},
    regcount: 1,
    ek_cert_verdict: 'absent',
    ek_cert_detail: 'no EK certificate sent',
    ek_cert_checked_at: 1_798_761_600,
    tpm_manufacturer: null,
    tpm_model: null,
    tpm_version: null,
    pending_key: null,
    pending_values: null,
    ...extra,
  }
}

const eccEk = makeSoftwareEk('ecc')
const eccAk = makeSoftwareAk('ecc')

for (const target of databaseTargets()) {
  describe(`RegistrarWrites on ${target.name}`, () => {
    let kdb: KeylimeDatabase
    const rows = async (prefix: string) =>
      (await kdb.db.select().from(registrarmain))
        .filter((r) => r.agent_id.startsWith(prefix))
        .sort((a, b) => (a.agent_id < b.agent_id ? -1 : 1))

    beforeAll(async () => {
      kdb = await target.open()
    })
    afterAll(async () => {
      await kdb.close()
    })

    test('concurrent inserts: one statement; conflicting rows answer false, the rest true', async () => {
      const { db, counts } = counted(kdb.db)
      const writes = new RegistrarWrites(db)
      await kdb.db.insert(registrarmain).values(row('ins-2', { key: 'old' }))
      const ids = ['ins-0', 'ins-1', 'ins-2', 'ins-3', 'ins-4']
      const results = await Promise.all(ids.map((id) => writes.insert(row(id))))
      expect(results).toEqual([true, true, false, true, true])
      expect(counts.insert).toBe(1)
      expect(writes.stats.insert).toMatchObject({ statements: 1, batches: 1, rows: 5 })
      const stored = await rows('ins-')
      expect(stored.map((r) => [r.agent_id, r.key])).toEqual([
        ['ins-0', 'key-ins-0'],
        ['ins-1', 'key-ins-1'],
        ['ins-2', 'old'],
        ['ins-3', 'key-ins-3'],
        ['ins-4', 'key-ins-4'],
      ])
      // Every column round-trips through the VALUES list.
      expect(stored[0]).toEqual({ ...row('ins-0') })
    })

    test('activations: one statement; only rows still holding the checked key activate', async () => {
      await kdb.db.insert(registrarmain).values(['act-a', 'act-b', 'act-c'].map((id) => row(id)))
      const { db, counts } = counted(kdb.db)
      const writes = new RegistrarWrites(db)
      const results = await Promise.all([
        writes.activate('act-a', 'key-act-a'),
        writes.activate('act-b', 'stale-key'),
        writes.activate('act-c', 'key-act-c'),
        writes.activate('act-missing', 'key-act-missing'),
      ])
      expect(results).toEqual([true, false, true, false])
      expect(counts.update).toBe(1)
      expect((await rows('act-')).map((r) => [r.agent_id, r.active])).toEqual([
        ['act-a', true],
        ['act-b', false],
        ['act-c', true],
      ])
    })

    test('re-registrations: one statement; compare-and-set on regcount (including NULL)', async () => {
      await kdb.db
        .insert(registrarmain)
        .values([row('upd-a'), row('upd-b', { regcount: 4 }), row('upd-c', { regcount: null })])
      const { db, counts } = counted(kdb.db)
      const writes = new RegistrarWrites(db)
      const next = (id: string, regcount: number) =>
        row(id, { regcount, key: `new-${id}`, ip: '10.0.0.9', provider_keys: { n: regcount } })
      const results = await Promise.all([
        writes.update(next('upd-a', 2), 1), // read 1, still 1: written
        writes.update(next('upd-b', 4), 3), // read 3, now 4: lost race
        writes.update(next('upd-c', 1), null), // read NULL, still NULL: written
        writes.update(next('upd-missing', 1), 0),
      ])
      expect(results).toEqual([true, false, true, false])
      expect(counts.update).toBe(1)
      const stored = await rows('upd-')
      expect(stored.map((r) => [r.agent_id, r.regcount, r.key, r.ip])).toEqual([
        ['upd-a', 2, 'new-upd-a', '10.0.0.9'],
        ['upd-b', 4, 'key-upd-b', '127.0.0.1'],
        ['upd-c', 1, 'new-upd-c', '10.0.0.9'],
      ])
      expect(stored[0]!.provider_keys).toEqual({ n: 2 })
    })

    test('staged re-registration: parked only on the activated row read, applied by its key', async () => {
      await kdb.db
        .insert(registrarmain)
        .values([
          row('stg-a', { active: true }),
          row('stg-b', { active: false }),
          row('stg-c', { active: true, regcount: 5 }),
        ])
      const writes = new RegistrarWrites(kdb.db)
      const [a, b, c] = await rows('stg-')
      const next = (id: string) =>
        row(id, { key: `new-${id}`, ip: '10.0.0.8', regcount: 2, active: false })
      expect(await writes.stage(next('stg-a'), a!)).toBe(true)
      expect(await writes.stage(next('stg-b'), b!)).toBe(false) // not activated: not staged
      expect(await writes.stage(next('stg-c'), { ...c!, regcount: 4 })).toBe(false) // lost race
      // The activated record is untouched; only the pending columns hold the new row.
      const [staged] = await rows('stg-a')
      expect([staged!.key, staged!.ip, staged!.active, staged!.pending_key]).toEqual([
        'key-stg-a',
        '127.0.0.1',
        true,
        'new-stg-a',
      ])
      expect(await writes.applyStaged('stg-a', 'wrong', staged!.pending_values)).toBe(false)
      expect(
        await writes.applyStaged('stg-a', 'new-stg-a', {
          ...(staged!.pending_values as object),
          agent_id: 'elsewhere', // not a staged column: ignored
        }),
      ).toBe(true)
      const [applied] = await rows('stg-a')
      expect(applied).toEqual(
        row('stg-a', { key: 'new-stg-a', ip: '10.0.0.8', regcount: 2, active: true }),
      )
    })

    test('one bad row (NUL in a text column) fails alone: the batch falls back to single statements', async () => {
      const { db, counts } = counted(kdb.db)
      const writes = new RegistrarWrites(db)
      const results = await Promise.allSettled([
        writes.insert(row('nul-a')),
        writes.insert(row('nul-b', { ip: 'host\u0000name' })),
        writes.insert(row('nul-c')),
      ])
      expect(results[0]).toEqual({ status: 'fulfilled', value: true })
      expect(results[1]!.status).toBe('rejected')
      expect(results[2]).toEqual({ status: 'fulfilled', value: true })
      expect(writes.stats.insert).toMatchObject({ batches: 1, fallbacks: 1, statements: 4 })
      expect(counts.insert).toBe(4)
      expect((await rows('nul-')).map((r) => r.agent_id)).toEqual(['nul-a', 'nul-c'])
    })

    test('service: a burst of 24 registrations and activations shares statements', async () => {
      const { db, counts } = counted(kdb.db)
      const service = new RegistrarService({
        database: { ...kdb, db },
        log: getLogger('registrar-test'),
        certStore: { get: () => new Error('no store') },
      })
      const agent = new SoftwareAgent(eccEk, eccAk)
      const ids = Array.from({ length: 24 }, (_, i) => `burst-${String(i).padStart(2, '0')}`)
      const blobs = await Promise.all(ids.map((id) => service.register(id, agent.body(), '2.6')))
      await Promise.all(
        ids.map((id, i) => service.activate(id, { auth_tag: agent.authTag(id, blobs[i]!.blob) })),
      )
      const stored = await rows('burst-')
      expect(stored.length).toBe(24)
      expect(stored.every((r) => r.active === true && r.regcount === 1)).toBe(true)
      // No reads were needed (new ids, keys cached) and the writes were coalesced.
      expect(counts.select).toBe(0)
      expect(counts.insert + counts.update).toBeLessThan(24)
      const stats = service.writeStats
      expect(stats.insert.rows).toBe(24)
      expect(stats.activate.rows).toBe(24)
      expect(stats.insert.batches).toBeGreaterThan(0)
    })
  })
}
