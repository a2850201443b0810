import { describe, expect, test } from 'bun:test'
import { emptyRuntimePolicy } from '../../ima/index.ts'
import type { CheckJob, CheckRecordData } from './check-job.ts'
import { parseMbPolicy, type RoundPolicies } from './check-quote.ts'
import { WorkerPolicyCache } from './worker-policy-cache.ts'

const MB_V1 = JSON.stringify({ scrtm_and_bios: [{ platform_manufacturer: 'QEMU' }] })
const MB_V2 = JSON.stringify({ scrtm_and_bios: [{ platform_manufacturer: 'OVMF' }] })
const KEYS = JSON.stringify({ version: 1, keyids: [], pubkeys: [] })

/** A quote job as the pool sends it: only the fields the cache reads matter. */
function job(o: Partial<CheckJob> & { keys?: string }): CheckJob {
  const rec = { imaSignVerificationKeys: o.keys ?? '' } as CheckRecordData
  return { type: 'quote', seq: 1, rec, results: {}, nonce: 'n', imaKey: null, mb: null, ...o }
}

function policiesOf(r: RoundPolicies | { error: string }): RoundPolicies {
  if ('error' in r) throw new Error(r.error)
  return r
}

describe('WorkerPolicyCache', () => {
  test('an MB policy version is parsed once: later jobs without its text get the same object', () => {
    const cache = new WorkerPolicyCache()
    const first = policiesOf(cache.roundPolicies(job({ mbKey: '2:1', mb: MB_V1 })))
    expect(first).toMatchObject({ mb: MB_V1, mbActive: true, mbRefstate: JSON.parse(MB_V1) })
    const second = policiesOf(cache.roundPolicies(job({ mbKey: '2:1', mb: null })))
    expect(second.mbRefstate).toBe(first.mbRefstate)
    expect(second.mb).toBe(MB_V1)
  })

  test('a new MB policy version is parsed again; the old one stays held', () => {
    const cache = new WorkerPolicyCache()
    const v1 = policiesOf(cache.roundPolicies(job({ mbKey: '2:1', mb: MB_V1 })))
    const v2 = policiesOf(cache.roundPolicies(job({ mbKey: '2:2', mb: MB_V2 })))
    expect(v2.mbRefstate).not.toBe(v1.mbRefstate)
    expect(v2.mbRefstate).toEqual(JSON.parse(MB_V2))
    const again = policiesOf(cache.roundPolicies(job({ mbKey: '2:1', mb: null })))
    expect(again.mbRefstate).toBe(v1.mbRefstate)
  })

  test('a policy version named without its text is an error answer, not a guess', () => {
    const cache = new WorkerPolicyCache()
    expect(cache.roundPolicies(job({ mbKey: '2:9', mb: null }))).toEqual({
      error: 'measured-boot policy 2:9 not sent',
    })
    expect(cache.roundPolicies(job({ imaKey: '1:9' }))).toEqual({
      error: 'runtime policy 1:9 not sent',
    })
  })

  test('an unkeyed or unparseable MB policy reads as on the main thread', () => {
    const cache = new WorkerPolicyCache()
    for (const mb of [null, '', 'not json', '{}', MB_V1]) {
      const p = policiesOf(cache.roundPolicies(job({ mb })))
      const main = parseMbPolicy(mb)
      expect({ mb: p.mb, active: p.mbActive, refstate: p.mbRefstate }).toEqual({
        mb: main.text,
        active: main.active,
        refstate: main.refstate,
      })
    }
    const bad = policiesOf(cache.roundPolicies(job({ mbKey: '3:1', mb: 'not json' })))
    expect(bad).toMatchObject({ mb: 'not json', mbActive: true, mbRefstate: undefined })
  })

  test('a runtime policy version is compiled once', () => {
    const cache = new WorkerPolicyCache()
    const text = JSON.stringify(emptyRuntimePolicy())
    const first = policiesOf(cache.roundPolicies(job({ imaKey: '1:1', imaText: text })))
    const second = policiesOf(cache.roundPolicies(job({ imaKey: '1:1' })))
    expect(first.ima).not.toBeNull()
    expect(second.ima).toBe(first.ima)
  })

  test('agents with the same IMA keys text share one keyring; none or invalid keys give null', () => {
    const cache = new WorkerPolicyCache()
    const a = policiesOf(cache.roundPolicies(job({ keys: KEYS })))
    const b = policiesOf(cache.roundPolicies(job({ keys: ` ${KEYS}` })))
    const a2 = policiesOf(cache.roundPolicies(job({ keys: KEYS })))
    expect(a.tenantKeyring).not.toBeNull()
    expect(a2.tenantKeyring).toBe(a.tenantKeyring)
    expect(b.tenantKeyring).not.toBe(a.tenantKeyring)
    expect(policiesOf(cache.roundPolicies(job({ keys: '' }))).tenantKeyring).toBeNull()
    expect(policiesOf(cache.roundPolicies(job({ keys: '{' }))).tenantKeyring).toBeNull()
  })
})
