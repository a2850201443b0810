/**
 * No verifier answer can crash or hang the push agent. Each answer of a good exchange (session
 * challenge, PoP result, 201 with `evidence_requested` and `Location`, 202 with `meta`) is
 * replayed with one field changed — to null, a negative number, an empty string, a
 * `{"toString":1}` object, a list, or removed — and with the `Location` header changed or
 * dropped. Every cycle must end with a typed outcome (`accepted`, or `failed` with an
 * `ERR_AGENT_*` code) within a bound; none may throw, and no request may leave the verifier's
 * origin. The verifier is the fake built from the protocol document
 * (test/support/fake-push-verifier.ts); the TPM is swtpm.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { HardwareAgentTpm } from '../../src/agent/tpm/hardware-agent-tpm.ts'
import { FakePushVerifier, type SeenRequest } from '../support/fake-push-verifier.ts'
import { openSwtpmAgentTpm, pushAgentHarness } from '../support/push-agent.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from '../support/swtpm.ts'

const missing = missingSwtpmTools()
if (missing.length > 0) console.log(`skipping hostile push verifier: missing ${missing.join(', ')}`)

const AGENT = 'hostile-verifier-agent'
const BASE = 'https://verifier.test:8881'
const REPLACEMENTS: unknown[] = [null, -1, '', { toString: 1 }, []]
const REMOVE = Symbol('remove')
/** The typed outcomes of a failed cycle (a bare `ERR_AGENT_PUSH` would be an untyped throw). */
const TYPED = ['ERR_AGENT_PUSH_ANSWER', 'ERR_AGENT_PUSH_STATUS', 'ERR_AGENT_PUSH_AUTH']

/** Every path to a value inside `v` (objects and arrays), parents before children. */
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (typeof v !== 'object' || v === null) return []
  const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v)
  return keys.flatMap((k) => [
    [...at, k],
    ...paths((v as Record<string | number, unknown>)[k], [...at, k]),
  ])
}

/** `v` with the value at `path` replaced (or removed). */
function mutate(v: unknown, path: (string | number)[], to: unknown): unknown {
  const copy = structuredClone(v) as Record<string | number, unknown>
  let node = copy
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>
  const last = path.at(-1)!
  if (to === REMOVE) {
    if (Array.isArray(node)) node.splice(Number(last), 1)
    else delete node[last]
  } else node[last] = to
  return copy
}

/** The steps whose answers are mutated: method, path, and the status of the good answer. */
const STEPS = [
  { name: 'challenge', method: 'POST', path: /\/sessions$/ },
  { name: 'PoP result', method: 'PATCH', path: /\/sessions\/[^/]+$/ },
  { name: '201', method: 'POST', path: /\/attestations$/ },
  { name: '202', method: 'PATCH', path: /\/attestations\/\d+$/ },
] as const

describe.skipIf(missing.length > 0)('push agent against hostile verifier answers', () => {
  let swtpm: Swtpm
  let work: string
  let tpm: HardwareAgentTpm

  beforeAll(async () => {
    swtpm = await startSwtpm()
    work = mkdtempSync(join(tmpdir(), 'kl-hostile-verifier-'))
    tpm = await openSwtpmAgentTpm(swtpm, work)
  }, 60_000)

  afterAll(async () => {
    await tpm?.close()
    await swtpm?.remove()
    if (work) rmSync(work, { recursive: true, force: true })
  })

  for (const step of STEPS) {
    test(`every field of the ${step.name} answer, mutated`, async () => {
      const v = new FakePushVerifier({ agentId: AGENT, akTpm2b: tpm.akTpm2b, imaOffset: 0 })
      const { auth, loop } = pushAgentHarness({
        tpm,
        agentId: AGENT,
        verifierUrl: BASE,
        fetch: v.fetch,
        backoff: { initialDelayMs: 1, maxRetries: 1, maxDelayMs: 1 },
      })
      // one good exchange gives the shape of the answer to mutate
      let good: { status: number; headers: Headers; body: unknown } | undefined
      v.once(step.method, step.path, async (req: SeenRequest) => {
        const res = v.answer(req)
        good = { status: res.status, headers: res.headers, body: await res.json() }
        return new Response(JSON.stringify(good.body), { status: res.status, headers: res.headers })
      })
      expect(await loop.cycle()).toMatchObject({ kind: 'accepted' })
      // each case changes the live answer (fresh challenge, current Location) in one place
      type Case = { what: string; body: (b: unknown) => unknown; location?: string }
      const cases: Case[] = []
      for (const p of paths(good!.body)) {
        for (const to of [...REPLACEMENTS, REMOVE]) {
          const what = `${p.join('.')} → ${to === REMOVE ? 'removed' : JSON.stringify(to)}`
          cases.push({ what, body: (b) => mutate(b, p, to) })
        }
      }
      if (step.name === '201') {
        for (const location of [
          '',
          'https://evil.test/x',
          'http://[',
          'javascript:alert(1)',
          `/${'a'.repeat(5000)}`,
        ]) {
          cases.push({ what: `Location ${location.slice(0, 20)}`, body: (b) => b, location })
        }
      }
      const outcomes = new Map<string, number>()
      for (const c of cases) {
        auth.clear() // every case walks the whole exchange
        v.once(step.method, step.path, async (req: SeenRequest) => {
          const live = v.answer(req)
          const headers = new Headers(live.headers)
          if (c.location !== undefined) headers.set('location', c.location)
          const body = JSON.stringify(c.body(await live.json()))
          return new Response(body, { status: live.status, headers })
        })
        const started = Date.now()
        const out = await loop.cycle()
        expect(Date.now() - started).toBeLessThan(5000)
        const key = out.kind === 'failed' ? out.code : out.kind
        if (out.kind === 'failed') expect(TYPED).toContain(out.code)
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
      }
      console.log(`${step.name}: ${cases.length} mutated answers →`, Object.fromEntries(outcomes))
      expect(v.seen.every((r) => !r.path.includes('evil'))).toBe(true)
      if (step.name === '202') {
        // the evidence is in: a bad 202 body only costs the verifier's interval (fallback wait)
        expect([...outcomes.keys()]).toEqual(['accepted'])
      } else {
        // the mutations that break the answer are typed failures
        expect([...outcomes.keys()].some((k) => k.startsWith('ERR_AGENT_PUSH_'))).toBe(true)
      }
    }, 120_000)
  }
})
