/**
 * Integration tests of the IMA stage on the real guest log (`test/fixtures/ima/vm`, see NOTES.md)
 * and the synthetic all-templates log, including policies made by our own tool.
 */

import { describe, expect, test } from 'bun:test'
import type { KeyObject } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type CompiledRuntimePolicy,
  compileRuntimePolicy,
  emptyRuntimePolicy,
  evaluateIma,
  evaluateImaEvidence,
  getPubkey,
  ImaKeyring,
  imaStateFromJSON,
  imaStateToJSON,
  loadRuntimePolicy,
  PolicyCache,
} from '../src/ima/index.ts'
import { runPolicyCreateRuntime, runPolicySignRuntime } from '../src/policy-tools/index.ts'
import type { HashAlg } from '../src/tpm/constants.ts'

const VM = join(import.meta.dir, 'fixtures/ima/vm')
const SYN = join(import.meta.dir, 'fixtures/ima/synthetic')

function pcrs(dir: string): Map<HashAlg, Uint8Array> {
  const t = readFileSync(join(VM, dir, 'pcr10.txt'), 'utf8')
  const m = [...t.matchAll(/10: 0x([0-9A-F]+)/g)].map((x) => Buffer.from(x[1] as string, 'hex'))
  return new Map<HashAlg, Uint8Array>([
    ['sha1', m[0] as Uint8Array],
    ['sha256', m[1] as Uint8Array],
  ])
}
const listA = readFileSync(join(VM, 'a/ascii_runtime_measurements'), 'utf8')
const listB = readFileSync(join(VM, 'b/ascii_runtime_measurements'), 'utf8')

function ctx() {
  const out: string[] = []
  const err: string[] = []
  const cwd = mkdtempSync(join(tmpdir(), 'ima-test-'))
  return {
    out,
    err,
    cwd,
    c: {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      cwd,
    },
  }
}

async function policyFromList(
  list: string,
  extra: string[] = [],
): Promise<{ json: string; policy: CompiledRuntimePolicy }> {
  const { out, err, cwd, c } = ctx()
  writeFileSync(join(cwd, 'list'), list)
  const code = await runPolicyCreateRuntime(['-m', 'list', ...extra], c)
  expect(err.join('')).toBe('')
  expect(code).toBe(0)
  const json = out.join('')
  return { json, policy: loadRuntimePolicy(json) }
}

/** Replay only: a policy excluding every path (a null policy is upstream's empty policy). */
const replayOnly = compileRuntimePolicy({ ...emptyRuntimePolicy(), excludes: ['.*'] }, '')

describe('real guest log', () => {
  test('replays to the quoted PCR 10 in both banks', () => {
    for (const bank of ['sha1', 'sha256'] as const) {
      const q = pcrs('a').get(bank) as Uint8Array
      const r = evaluateIma({
        list: listA,
        startEntry: 0,
        state: undefined,
        quotedPcr10: q,
        bank,
        policy: replayOnly,
      })
      expect(r.ok).toBe(true)
      if (r.ok === true) expect(r.state.nextEntry).toBe(59)
    }
  })

  test('a flipped PCR value is a pcr_mismatch', () => {
    const q = (pcrs('a').get('sha256') as Uint8Array).slice()
    q[0] = (q[0] as number) ^ 1
    const r = evaluateIma({
      list: listA,
      startEntry: 0,
      state: undefined,
      quotedPcr10: q,
      bank: 'sha256',
      policy: replayOnly,
    })
    expect(r.ok).toBe(false)
    if (r.ok === false) expect(r.failures.map((f) => f.event_id)).toEqual(['ima.pcr_mismatch'])
  })

  test('a policy made from the log by our tool passes; a changed digest fails with the path', async () => {
    const { json, policy } = await policyFromList(listA)
    expect(policy.pathCount).toBeGreaterThan(10)
    const ok = evaluateIma({
      list: listA,
      startEntry: 0,
      state: undefined,
      quotedPcr10: pcrs('a'),
      bank: 'sha256',
      policy,
    })
    expect(ok.ok).toBe(true)
    const doc = JSON.parse(json)
    doc.digests['/usr/bin/busybox'] = ['00'.repeat(32)]
    const bad = evaluateIma({
      list: listA,
      startEntry: 0,
      state: undefined,
      quotedPcr10: pcrs('a'),
      bank: 'sha256',
      policy: loadRuntimePolicy(JSON.stringify(doc)),
    })
    expect(bad.ok).toBe(false)
    if (bad.ok === false) {
      expect(bad.failures).toHaveLength(1)
      expect(bad.failures[0]?.event_id).toBe('ima.validation.ima-ng.runtime_policy_hash')
      expect(bad.failures[0]?.context.path).toBe('/usr/bin/busybox')
      expect(bad.state.nextEntry).toBe(0) // any failure resets the state
    }
    delete doc.digests['/usr/bin/busybox']
    const missing = evaluateIma({
      list: listA,
      startEntry: 0,
      state: undefined,
      quotedPcr10: pcrs('a'),
      bank: 'sha256',
      policy: loadRuntimePolicy(JSON.stringify(doc)),
    })
    expect(missing.ok === false && missing.failures[0]?.event_id).toBe(
      'ima.validation.ima-ng.not_in_allowlist',
    )
    // excluded with a Python re.match-style prefix regex: passes again
    doc.excludes = ['/usr/bin/busy']
    const excl = evaluateIma({
      list: listA,
      startEntry: 0,
      state: undefined,
      quotedPcr10: pcrs('a'),
      bank: 'sha256',
      policy: loadRuntimePolicy(JSON.stringify(doc)),
    })
    expect(excl.ok).toBe(true)
    // ...but re.match anchors at the start: 'bin/busybox' does not exclude '/usr/bin/busybox'
    doc.excludes = ['bin/busybox']
    const notExcl = evaluateIma({
      list: listA,
      startEntry: 0,
      state: undefined,
      quotedPcr10: pcrs('a'),
      bank: 'sha256',
      policy: loadRuntimePolicy(JSON.stringify(doc)),
    })
    expect(notExcl.ok).toBe(false)
  })

  test('incremental rounds verify only new entries; JSON state round-trips', async () => {
    const { policy } = await policyFromList(listB)
    const r1 = evaluateIma({
      list: listA,
      startEntry: 0,
      bootTime: 1000,
      state: undefined,
      quotedPcr10: pcrs('a'),
      bank: 'sha256',
      policy,
    })
    expect(r1.ok).toBe(true)
    if (r1.ok !== true) return
    expect(r1.entriesVerified).toBe(59)
    const stored = imaStateFromJSON(JSON.parse(JSON.stringify(imaStateToJSON(r1.state))))
    const tail = listB.split('\n').slice(59).join('\n')
    const r2 = evaluateIma({
      list: tail,
      startEntry: stored.nextEntry,
      bootTime: 1000,
      state: stored,
      quotedPcr10: pcrs('b'),
      bank: 'sha256',
      policy,
    })
    expect(r2.ok).toBe(true)
    if (r2.ok === true) {
      expect(r2.entriesVerified).toBe(3)
      expect(r2.state.nextEntry).toBe(62)
    }
    // the agent answering from a different entry number: invalid_ima_entry_nb
    const r3 = evaluateIma({
      list: tail,
      startEntry: 5,
      bootTime: 1000,
      state: stored,
      quotedPcr10: pcrs('b'),
      bank: 'sha256',
      policy,
    })
    expect(r3.ok === false && r3.failures[0]?.event_id).toBe(
      'qoute_validation.invalid_ima_entry_nb',
    )
    // reboot: boottime changed on an incremental request → retry with a reset state
    const r4 = evaluateIma({
      list: tail,
      startEntry: 59,
      bootTime: 2000,
      state: stored,
      quotedPcr10: pcrs('b'),
      bank: 'sha256',
      policy,
    })
    expect(r4.ok).toBe('retry')
    expect(r4.state.nextEntry).toBe(0)
    // entry 0 resets: the full list verifies from scratch even with a stale state
    const r5 = evaluateIma({
      list: listB,
      startEntry: 0,
      bootTime: 2000,
      state: stored,
      quotedPcr10: pcrs('b'),
      bank: 'sha256',
      policy,
    })
    expect(r5.ok === true && r5.state.nextEntry).toBe(62)
  })

  test('the quote may lag the log: PCR of snapshot a matches line 59 of list b', () => {
    const r = evaluateIma({
      list: listB,
      startEntry: 0,
      state: undefined,
      quotedPcr10: pcrs('a'),
      bank: 'sha256',
      policy: replayOnly,
    })
    expect(r.ok).toBe(true)
    if (r.ok === true) {
      expect(r.matchedLine).toBe(59)
      expect(r.state.nextEntry).toBe(59)
      expect(r.entriesVerified).toBe(62)
    }
  })
})

describe('synthetic all-templates log', () => {
  const text = readFileSync(join(SYN, 'all-templates.txt'), 'utf8')
  const p = JSON.parse(readFileSync(join(SYN, 'all-templates.pcr10.json'), 'utf8'))
  const quoted = new Map<HashAlg, Uint8Array>([
    ['sha1', Buffer.from(p.sha1, 'hex')],
    ['sha256', Buffer.from(p.sha256, 'hex')],
  ])
  const rsa = getPubkey(readFileSync(join(SYN, 'keys/rsa-cert.der')))
  const ec = getPubkey(readFileSync(join(SYN, 'keys/ec-pub.pem')))

  function policy(mut: (d: Record<string, unknown>) => void = () => {}): CompiledRuntimePolicy {
    const digests: Record<string, string[]> = {}
    for (const line of text.trim().split('\n')) {
      const f = line.split(' ')
      if (f[2] === 'ima-buf') continue
      const d = (f[3] as string).split(':').pop() as string
      digests[f.slice(4, f[2] === 'ima-ng' || f[2] === 'ima' ? undefined : 5).join(' ')] = [d]
    }
    const keyrings = {
      keyids: [rsa?.keyid, ec?.keyid],
      pubkeys: [rsa, ec].map((k) =>
        ((k as NonNullable<typeof k>).key as KeyObject)
          .export({ type: 'spki', format: 'der' })
          .toString('base64'),
      ),
    }
    const doc: Record<string, unknown> = {
      meta: { version: 1, generator: 3 },
      release: 0,
      digests,
      excludes: [],
      keyrings: {},
      ima: { ignored_keyrings: ['.ima'], log_hash_alg: 'sha1', dm_policy: null },
      'ima-buf': {
        kernel_version: [
          (text.split('\n').find((l) => l.includes('kernel_version')) as string)
            .split(' ')[3]
            ?.split(':')[1],
        ],
      },
      'verification-keys': JSON.stringify(keyrings),
    }
    mut(doc)
    return loadRuntimePolicy(JSON.stringify(doc))
  }

  test('every template replays to both banks and validates', () => {
    const r = evaluateImaEvidence({
      list: text,
      quotedPcr10: quoted,
      bank: 'sha256',
      policy: policy(),
      config: { ignoreTomtouErrors: true },
    })
    expect(r.ok === false ? r.failures : []).toEqual([])
  })

  test('ToMToU: an event unless ignore_tomtou_errors', () => {
    const r = evaluateImaEvidence({
      list: text,
      quotedPcr10: quoted,
      bank: 'sha256',
      policy: policy(),
      config: { ignoreTomtouErrors: false },
    })
    expect(r.ok === false && r.failures.map((f) => f.event_id)).toEqual(['ima.validation.tomtou'])
  })

  test('signed files pass by signature alone; a wrong key falls back to digests', () => {
    const drop = (d: Record<string, unknown>) => {
      const g = d.digests as Record<string, string[]>
      delete g['/usr/bin/signed-rsa']
      delete g['/usr/bin/signed-ec']
    }
    const r = evaluateImaEvidence({
      list: text,
      quotedPcr10: quoted,
      bank: 'sha256',
      policy: policy(drop),
      config: { ignoreTomtouErrors: true },
    })
    expect(r.ok).toBe(true)
    const noKeys = evaluateImaEvidence({
      list: text,
      quotedPcr10: quoted,
      bank: 'sha256',
      policy: policy((d) => {
        drop(d)
        d['verification-keys'] = ''
      }),
      config: { ignoreTomtouErrors: true },
    })
    expect(noKeys.ok === false && noKeys.failures.map((f) => f.context.path)).toEqual([
      '/usr/bin/signed-rsa',
      '/usr/bin/signed-ec',
    ])
  })

  test('no runtime policy is upstream empty policy: signatures checked, other files not_in_allowlist', () => {
    const failuresWith = (tenantKeyring: ImaKeyring | null) => {
      const config = { ignoreTomtouErrors: true, tenantKeyring }
      const r = evaluateImaEvidence({
        list: text,
        quotedPcr10: quoted,
        bank: 'sha256',
        policy: null,
        config,
      })
      return r.ok === false ? r.failures : []
    }
    const tenantKeyring = new ImaKeyring()
    for (const k of [rsa, ec]) if (k !== null) tenantKeyring.add(k.key, k.keyid)
    const keyed = failuresWith(tenantKeyring)
    expect(new Set(keyed.map((f) => f.event_id))).toEqual(
      new Set(['ima.validation.ima-ng.not_in_allowlist']),
    )
    const paths = keyed.map((f) => f.context.path)
    expect(paths).not.toContain('/usr/bin/signed-rsa')
    expect(paths).not.toContain('/usr/bin/signed-ec')
    const unkeyed = failuresWith(null).map((f) => f.context.path)
    expect(unkeyed).toContain('/usr/bin/signed-rsa')
    expect(unkeyed).toContain('/usr/bin/signed-ec')
  })

  test('keyrings: an un-ignored keyring entry must be in policy.keyrings, and its key is learned', () => {
    const notIgnored = (d: Record<string, unknown>) => {
      ;(d.ima as Record<string, unknown>).ignored_keyrings = []
    }
    const r = evaluateImaEvidence({
      list: text,
      quotedPcr10: quoted,
      bank: 'sha256',
      policy: policy(notIgnored),
      config: { ignoreTomtouErrors: true },
    })
    expect(r.ok === false && r.failures.map((f) => [f.event_id, f.context.path])).toEqual([
      ['ima.validation.ima-ng.not_in_allowlist', '.ima'],
    ])
    const certLine = text.split('\n').find((l) => l.includes(' .ima ')) as string
    const withKeyring = policy((d) => {
      notIgnored(d)
      d.keyrings = { '.ima': [(certLine.split(' ')[3] as string).split(':')[1]] }
    })
    const ok = evaluateImaEvidence({
      list: text,
      quotedPcr10: quoted,
      bank: 'sha256',
      policy: withKeyring,
      config: { ignoreTomtouErrors: true },
    })
    expect(ok.ok).toBe(true)
    if (ok.ok === true)
      expect([...(ok.state.learnedKeyrings.get('.ima')?.keys.keys() ?? [])]).toEqual([
        rsa?.keyid as number,
      ])
    const star = evaluateImaEvidence({
      list: text,
      quotedPcr10: quoted,
      bank: 'sha256',
      policy: policy((d) => {
        ;(d.ima as Record<string, unknown>).ignored_keyrings = ['*']
      }),
      config: { ignoreTomtouErrors: true },
    })
    expect(star.ok).toBe(true)
  })

  test('malformed lines are ima.parser.entry events with their line numbers (a bad ima-sig signature: ima_hash)', () => {
    const bad = readFileSync(join(SYN, 'malformed.txt'), 'utf8')
    const r = evaluateImaEvidence({
      list: bad,
      quotedPcr10: new Uint8Array(32),
      bank: 'sha256',
      policy: replayOnly,
    })
    expect(r.ok).toBe(false)
    if (r.ok === false) {
      const parser = r.failures.filter((f) => f.event_id === 'ima.parser.entry')
      expect(parser.map((f) => f.context.line)).toEqual([1, 2, 3, 4, 5, 7, 8, 9])
      // line 6, an ima-sig entry with a malformed signature header, parses with the signature
      // dropped (upstream `ImaSig.create_signature`): its template hash no longer matches
      const hash = r.failures.filter((f) => f.event_id === 'ima.validation.ima_hash')
      expect(hash.map((f) => f.context.line)).toEqual([6])
    }
  })

  test('an entry for another PCR is an ima_pcr event', () => {
    const moved = text.replace(/^10 /, '11 ')
    const r = evaluateImaEvidence({
      list: moved,
      quotedPcr10: quoted,
      bank: 'sha256',
      policy: replayOnly,
      config: { ignoreTomtouErrors: true },
    })
    expect(r.ok === false && r.failures.map((f) => f.event_id)).toEqual(['ima.validation.ima_pcr'])
  })
})

describe('policy tools', () => {
  test('sign runtime (ecdsa) → DSSE envelope that verifies with the key, and is required when configured', async () => {
    const { out, err, cwd, c } = ctx()
    writeFileSync(join(cwd, 'list'), listA)
    expect(await runPolicyCreateRuntime(['-m', 'list', '-o', 'policy.json'], c)).toBe(0)
    expect(
      await runPolicySignRuntime(['-r', 'policy.json', '-p', 'key.pem', '-o', 'signed.json'], c),
    ).toBe(0)
    expect(err.join('')).toBe('')
    const signed = readFileSync(join(cwd, 'signed.json'), 'utf8')
    const { createPublicKey } = await import('node:crypto')
    const pub = createPublicKey(readFileSync(join(cwd, 'key.pem'))).export({
      type: 'spki',
      format: 'pem',
    }) as string
    const p = loadRuntimePolicy(signed, { requireSignature: true, key: pub })
    expect(p.pathCount).toBeGreaterThan(10)
    expect(() =>
      loadRuntimePolicy(readFileSync(join(cwd, 'policy.json')), {
        requireSignature: true,
        key: pub,
      }),
    ).toThrow('not signed')
    const env = JSON.parse(signed)
    env.payload = Buffer.from(
      Buffer.from(env.payload, 'base64').toString().replace('boot_aggregate', 'boot_aggregatf'),
    ).toString('base64')
    expect(() =>
      loadRuntimePolicy(JSON.stringify(env), { requireSignature: true, key: pub }),
    ).toThrow('no valid DSSE signature')
    expect(out).toEqual([])
  })

  test('sign runtime (x509) verifies from the certificate in the envelope', async () => {
    const { err, cwd, c } = ctx()
    writeFileSync(join(cwd, 'list'), listA)
    expect(await runPolicyCreateRuntime(['-m', 'list', '-o', 'policy.json'], c)).toBe(0)
    expect(
      await runPolicySignRuntime(
        ['-r', 'policy.json', '-b', 'x509', '-c', 'cert.pem', '-o', 'signed.json'],
        c,
      ),
    ).toBe(0)
    expect(err.join('')).toBe('')
    expect(
      loadRuntimePolicy(readFileSync(join(cwd, 'signed.json')), { requireSignature: true })
        .pathCount,
    ).toBeGreaterThan(10)
  })

  test('usage and unsupported options', async () => {
    const { err, c } = ctx()
    expect(await runPolicyCreateRuntime(['--bogus'], c)).toBe(2)
    expect(await runPolicyCreateRuntime(['--local-rpm-repo', '/x'], c)).toBe(1)
    expect(err.join('')).toContain('not supported')
    expect(await runPolicySignRuntime([], c)).toBe(2)
  })

  test('the policy cache compiles once per checksum and shares the index', async () => {
    const { json } = await policyFromList(listA)
    const cache = new PolicyCache(1)
    const a = cache.acquire(json)
    const b = cache.acquire(Buffer.from(json))
    expect(a.policy).toBe(b.policy)
    a.release()
    b.release()
    expect(cache.size).toBe(1)
    cache.acquire(`${json} `).release()
    expect(cache.size).toBe(1)
    expect(cache.acquire(json).policy).not.toBe(a.policy)
  })
})
