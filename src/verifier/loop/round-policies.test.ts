import { describe, expect, test } from 'bun:test'
import { type CompiledRuntimePolicy, emptyRuntimePolicy } from '../../ima/index.ts'
import { getLogger } from '../../log/logger.ts'
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
