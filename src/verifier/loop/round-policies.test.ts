import { describe, expect, test } from 'bun:test'
import { type CompiledRuntimePolicy, emptyRuntimePolicy } from '../../ima/index.ts'
import { getLogger, setLogSink } from '../../log/logger.ts'
import { type RoundRecord, requestMask } from '../checks/check-quote.ts'
import type { AgentRow, AllowlistRow, MbPolicyRow } from '../store/store.ts'
import { recordFromRow } from './agent-record.ts'
import { RoundPolicyCache } from './round-policies.ts'

const MB_POLICY = JSON.stringify({ scrtm_and_bios: [{ platform_manufacturer: 'QEMU' }] })

/** A store holding one runtime policy (id 1) and one MB policy (id 2), counting reads. */
function fakeStore() {
  const reads = { ima: 0, mb: 0 }
  const versions = { ima: 1, mb: 1 }
  return {
    reads,
    versions,
    async getAllowlistById(id: number) {
      reads.ima++
      const runtime = JSON.stringify(emptyRuntimePolicy())
      return { id, name: 'p', version: versions.ima, generator: 3, ima_policy: runtime } as
        AllowlistRow | undefined
    },
    async getMbPolicyById(id: number) {
      reads.mb++
      return { id, version: versions.mb, mb_policy: MB_POLICY } as MbPolicyRow | undefined
    },
  }
}

function setup() {
  const store = fakeStore()
  let compiles = 0
  let releases = 0
  const cache = new RoundPolicyCache({
    store,
    log: getLogger('test'),
    compileRuntime: () => {
      compiles++
      return { policy: { compiles } as unknown as CompiledRuntimePolicy, release: () => releases++ }
    },
  })
  const keys = JSON.stringify({ version: 1, keyids: [], pubkeys: [] })
  const rec = recordFromRow({
    agent_id: 'a1',
    ima_policy_id: 1,
    mb_policy_id: 2,
    ima_sign_verification_keys: keys,
  } as AgentRow)
  return { store, cache, rec, counts: () => ({ compiles, releases }) }
}

describe('RoundPolicyCache', () => {
  test('the first round loads and compiles; later rounds reuse the same objects', async () => {
    const { store, cache, rec, counts } = setup()
    expect(cache.cached(rec)).toBeUndefined()
    const first = await cache.load(rec)
    expect(counts().compiles).toBe(1)
    expect(first.policies.mbActive).toBe(true)
    expect(first.policies.mbRefstate).toEqual(JSON.parse(MB_POLICY))
    expect(first.imaKey).toBe('1:1')
    expect(first.policies.mbKey).toBe('2:1')
    const second = cache.cached(rec)
    expect(second).toBeDefined()
    expect(counts().compiles).toBe(1)
    expect(store.reads).toEqual({ ima: 1, mb: 1 })
    // parsed once per version: the same objects, not copies
    expect(second?.policies.ima).toBe(first.policies.ima)
    expect(second?.policies.mbRefstate).toBe(first.policies.mbRefstate)
    expect(second?.policies.tenantKeyring).toBe(first.policies.tenantKeyring)
    expect(second?.policies.tenantKeyring).not.toBeNull()
  })

  test('another agent on the same policies shares the compiled ones', async () => {
    const { cache, rec, counts } = setup()
    const first = await cache.load(rec)
    const other = recordFromRow({ agent_id: 'a2', ima_policy_id: 1, mb_policy_id: 2 } as AgentRow)
    const theirs = cache.cached(other)
    expect(theirs?.policies.ima).toBe(first.policies.ima)
    expect(theirs?.policies.tenantKeyring).toBeNull()
    expect(counts().compiles).toBe(1)
  })

  test('a new stored version is compiled again; an unchanged one is kept', async () => {
    const { store, cache, rec, counts } = setup()
    const first = await cache.load(rec)
    cache.refresh({ ima: new Map([[1, 1]]), mb: new Map([[2, 1]]) })
    expect(cache.cached(rec)).toBeDefined()
    store.versions.ima = 2
    cache.refresh({ ima: new Map([[1, 2]]), mb: new Map([[2, 1]]) })
    expect(counts().releases).toBe(1)
    expect(cache.cached(rec)).toBeUndefined()
    const next = await cache.load(rec)
    expect(counts().compiles).toBe(2)
    expect(next.imaKey).toBe('1:2')
    expect(next.policies.mbRefstate).toBe(first.policies.mbRefstate)
    expect(store.reads).toEqual({ ima: 2, mb: 1 })
  })

  test('invalidate forgets everything', async () => {
    const { store, cache, rec, counts } = setup()
    await cache.load(rec)
    cache.invalidate()
    expect(counts().releases).toBe(1)
    await cache.load(rec)
    expect(store.reads).toEqual({ ima: 2, mb: 2 })
  })

  test('an agent without policies needs no store reads', async () => {
    const { store, cache } = setup()
    const bare = recordFromRow({ agent_id: 'b' } as AgentRow)
    const set = cache.cached(bare)
    expect(set?.policies).toMatchObject({ ima: null, mb: null, mbActive: false })
    expect(set?.imaKey).toBeNull()
    expect(store.reads).toEqual({ ima: 0, mb: 0 })
  })
})

describe('RoundPolicyCache: the empty runtime policy', () => {
  /** A store whose runtime policy (id 1) is upstream's empty one with `verification-keys`. */
  function emptyPolicyStore(verificationKeys: string) {
    const doc = { ...emptyRuntimePolicy(), 'verification-keys': verificationKeys }
    return {
      async getAllowlistById(id: number) {
        const row = { id, name: 'a1', version: 1, generator: 1, ima_policy: JSON.stringify(doc) }
        return row as AllowlistRow | undefined
      },
      async getMbPolicyById() {
        return undefined
      },
    }
  }

  test('is evaluated (upstream EMPTY_RUNTIME_POLICY), its keys kept, PCR 10 not requested for it', async () => {
    const k1 =
      'MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEnNH3Y/xOTwRRd8D6hpodRLnVx71qDTLvJHouno7nU7JSzcXWN1PxK+HQEh1V7sMdwBER4KFKE635JTv6C+BRBg=='
    const keys = JSON.stringify({ keyids: [1394556965, 7], pubkeys: [k1, 'bm90IGEga2V5'] })
    const log = getLogger('test')
    const errors: string[] = []
    log.error = (msg: string) => {
      errors.push(msg)
    }
    const cache = new RoundPolicyCache({ store: emptyPolicyStore(keys), log })
    const rec = recordFromRow({ agent_id: 'a1', ima_policy_id: 1, mb_policy_id: null } as AgentRow)
    const { policies } = await cache.load(rec)
    expect(policies.ima?.generator).toBe(1)
    expect([...(policies.ima?.verificationKeys?.keys.keys() ?? [])]).toEqual([1394556965])
    expect(errors).toEqual(['runtime policy verification key does not load'])
    expect(
      requestMask({ tpmPolicy: { mask: 0x8000 } } as Pick<RoundRecord, 'tpmPolicy'>, policies),
    ).toBe(0x8000)
  })

  test("an agent's IMA key that does not load is logged with the agent, once", async () => {
    const { cache } = setup()
    const keys = JSON.stringify({ version: 1, keyids: [1], pubkeys: ['bm90IGEga2V5'] })
    const rec = recordFromRow({
      agent_id: 'bad-key',
      ima_policy_id: 1,
      mb_policy_id: 2,
      ima_sign_verification_keys: keys,
    } as AgentRow)
    const lines: string[] = []
    const restore = setLogSink((l) => lines.push(l), true)
    try {
      await cache.load(rec)
      cache.cached(rec)
    } finally {
      setLogSink(restore)
    }
    const hits = lines.filter((l) => l.includes('agent IMA verification key does not load'))
    expect(hits).toHaveLength(1)
    expect(hits[0]).toContain('bad-key')
    expect(rec.tenantKeyring?.skipped).toHaveLength(1)
  })
})
