/**
 * The push agent's cycle against a fake push verifier built from the protocol document
 * (test/support/fake-push-verifier.ts; the real verifier's push routes are being built at the
 * same time, and test/push-agent-upstream.test.ts runs against upstream's). The TPM is real
 * (swtpm): the fake verifier checks the TPM2_Certify proof and the quote as upstream does.
 * Sleeps are recorded instead of waited, so back-off and intervals are asserted exactly.
 *
 * Covered: the happy path (PoP, capabilities, Location, evidence, seconds_to_next_attestation,
 * headers, token reuse), 401 → immediate re-authentication (bounded), 429 Retry-After, 5xx
 * exponential back-off, network errors, Location on another origin, token renewal before
 * token_expires_at, IMA starting_offset, and malformed answers (typed failures, never a throw).
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FakePushVerifier } from '../../../test/support/fake-push-verifier.ts'
import { openSwtpmAgentTpm, pushAgentHarness } from '../../../test/support/push-agent.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from '../../../test/support/swtpm.ts'
import { AgentError } from '../errors.ts'
import { ImaListFile } from '../read-measurement-logs.ts'
import type { HardwareAgentTpm } from '../tpm/hardware-agent-tpm.ts'
import { PushAttestationLoop } from './push-attestation-loop.ts'
import { SessionAuth } from './session-auth.ts'
import { type Backoff, type FetchLike, VerifierHttp } from './verifier-http.ts'

const missing = missingSwtpmTools()
if (missing.length > 0) console.log(`skipping push loop tests: missing ${missing.join(', ')}`)

const AGENT = 'push-agent-1'
const URL_BASE = 'https://verifier.test:8881'
const BACKOFF: Backoff = { initialDelayMs: 100, maxRetries: 3, maxDelayMs: 1000 }

describe.skipIf(missing.length > 0)('push attestation loop (fake verifier, swtpm)', () => {
  let swtpm: Swtpm
  let work: string
  let tpm: HardwareAgentTpm

  beforeAll(async () => {
    swtpm = await startSwtpm()
    work = mkdtempSync(join(tmpdir(), 'kl-push-loop-'))
    tpm = await openSwtpmAgentTpm(swtpm, work)
    writeFileSync(join(work, 'ima'), 'a 1\nb 2\nc 3\nd 4\ne 5\n')
  }, 60_000)

  afterAll(async () => {
    await tpm?.close()
    await swtpm?.remove()
    if (work) rmSync(work, { recursive: true, force: true })
  })

  /** A loop wired to `fetch`, with recorded sleeps and an adjustable clock. */
  const setup = (
    fetch: FetchLike,
    over: { backoff?: Backoff; now?: () => number; interval?: number } = {},
  ) =>
    pushAgentHarness({
      tpm,
      agentId: AGENT,
      verifierUrl: URL_BASE,
      fetch,
      backoff: over.backoff ?? BACKOFF,
      intervalSeconds: over.interval,
      now: over.now,
      sources: {
        ima: new ImaListFile(join(work, 'ima')),
        uefiLog: () => Uint8Array.of(1, 2, 3),
        bootTime: 1_700_000_000,
      },
    })
  const fake = (over: Partial<ConstructorParameters<typeof FakePushVerifier>[0]> = {}) =>
    new FakePushVerifier({ agentId: AGENT, akTpm2b: tpm.akTpm2b, ...over })

  test('authenticates with TPM2_Certify, negotiates, follows Location, waits as told', async () => {
    const v = fake({
      meta: { seconds_to_next_attestation: 7 },
      location: (i) => `/v3.0/agents/${AGENT}/attestations/${i}`,
    })
    const { loop } = setup(v.fetch)
    const first = await loop.cycle()
    expect(first).toMatchObject({ kind: 'accepted', waitMs: 7000 })
    expect(v.accepted).toHaveLength(1)
    expect([...v.accepted[0]!.pcrs.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 23])
    expect(v.seen.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /v3.0/sessions',
      'PATCH /v3.0/sessions/' + v.seen[1]!.path.split('/').at(-1),
      `POST /v3.0/agents/${AGENT}/attestations`,
      `PATCH /v3.0/agents/${AGENT}/attestations/0`,
    ])
    for (const r of v.seen) {
      expect(r.contentType).toBe('application/vnd.api+json')
      expect(r.requestId).toMatch(/^[a-z0-9]{6}$/)
    }
    expect(v.seen[2]!.authorization).toMatch(/^Bearer [0-9a-f-]{36}\.[\w-]+$/)
    // the token is reused: the second cycle opens no new session
    expect(await loop.cycle()).toMatchObject({ kind: 'accepted' })
    expect(v.sessionsCreated).toBe(1)
    expect(v.accepted.map((a) => a.index)).toEqual([0, 1])
  })

  test('capabilities: banks with their PCRs, the AK as certification key, log counts, boot_time', async () => {
    const v = fake()
    const { loop } = setup(v.fetch)
    await loop.cycle()
    const attrs = (v.lastCapabilities!.data as Record<string, Record<string, unknown>>).attributes!
    const [quote, uefi, ima] = attrs.evidence_supported as Record<string, unknown>[]
    expect(quote!.evidence_type).toBe('tpm_quote')
    const caps = quote!.capabilities as Record<string, unknown>
    expect(caps.component_version).toBe('2.0')
    expect(caps.hash_algorithms).toEqual(['sha1', 'sha256'])
    expect((caps.available_subjects as Record<string, number[]>).sha256).toHaveLength(24)
    const key = (caps.certification_keys as Record<string, unknown>[])[0]!
    expect(key).toMatchObject({
      key_class: 'asymmetric',
      key_algorithm: 'rsa',
      key_size: 2048,
      server_identifier: 'ak',
      public: Buffer.from(tpm.akTpm2b).toString('base64'),
      allowable_hash_algorithms: ['sha256'],
      allowable_signature_schemes: ['rsassa'],
    })
    expect(String(key.local_identifier)).toMatch(/^000b[0-9a-f]{64}$/)
    expect(uefi).toMatchObject({ evidence_type: 'uefi_log', capabilities: { entry_count: 0 } })
    expect(ima).toMatchObject({
      evidence_type: 'ima_log',
      capabilities: { entry_count: 5, supports_partial_access: true, formats: ['text/plain'] },
    })
    expect(attrs.system_info).toEqual({ boot_time: '2023-11-14T22:13:20Z' })
  })

  test("request bodies carry every field of rust-keylime's, with the same JSON types", async () => {
    const v = fake({ imaOffset: 0, uefi: true })
    expect(await setup(v.fetch).loop.cycle()).toMatchObject({ kind: 'accepted' })
    const rust = (name: string) =>
      JSON.parse(
        readFileSync(
          join(import.meta.dir, '../../../test/fixtures/rust-keylime-push', name),
          'utf8',
        ),
      )
    expect(missingFields(rust('session_request.json'), v.seen[0]!.body)).toEqual([])
    expect(
      missingFields(rust('evidence_supported_attestation_request.json'), v.lastCapabilities),
    ).toEqual([])
    expect(missingFields(rust('evidence_handling_request.json'), v.lastEvidence)).toEqual([])
    const ev = (v.lastEvidence!.data as { attributes: { evidence_collected: { data: object }[] } })
      .attributes.evidence_collected
    expect(ev[1]!.data).toEqual({ entries: 'AQID' })
  })

  test('ima_log from starting_offset, with the entry count the verifier recomputes', async () => {
    const v = fake({ imaOffset: 3 })
    const { loop } = setup(v.fetch)
    expect(await loop.cycle()).toMatchObject({ kind: 'accepted' })
    expect(v.accepted[0]!.ima).toEqual({ entry_count: 2, entries: 'd 4\ne 5\n' })
  })

  test('401 on the attestation POST or PATCH: new session at once; 4 in a row: wait', async () => {
    const v = fake()
    const { loop, sleeps } = setup(v.fetch)
    await loop.cycle()
    v.revokeTokens()
    expect(await loop.cycle()).toEqual({ kind: 'reauth', waitMs: 0, step: 'negotiate' })
    expect(await loop.cycle()).toMatchObject({ kind: 'accepted' })
    expect(v.sessionsCreated).toBe(2)
    v.once('PATCH', /attestations\/\d+$/, () => new Response(null, { status: 401 }))
    expect(await loop.cycle()).toEqual({ kind: 'reauth', waitMs: 0, step: 'attest' })
    expect(await loop.cycle()).toMatchObject({ kind: 'accepted' })
    expect(v.sessionsCreated).toBe(3)
    expect(sleeps).toEqual([])
    for (let i = 0; i < 4; i++)
      v.once('POST', /attestations$/, () => new Response(null, { status: 401 }))
    const outcomes = [
      await loop.cycle(),
      await loop.cycle(),
      await loop.cycle(),
      await loop.cycle(),
    ]
    expect(outcomes.map((o) => o.kind)).toEqual(['reauth', 'reauth', 'reauth', 'failed'])
    expect(outcomes[3]!.waitMs).toBe(60_000)
  })

  test('429 with Retry-After is waited (capped at the maximum delay), then retried', async () => {
    const v = fake()
    v.once(
      'POST',
      /sessions$/,
      () => new Response(null, { status: 429, headers: { 'retry-after': '0' } }),
    )
    v.once(
      'POST',
      /attestations$/,
      () => new Response(null, { status: 429, headers: { 'retry-after': '3600' } }),
    )
    const { loop, sleeps } = setup(v.fetch, { backoff: { ...BACKOFF, maxDelayMs: 5000 } })
    expect(await loop.cycle()).toMatchObject({ kind: 'accepted' })
    expect(sleeps).toEqual([0, 5000])
  })

  test('5xx and network errors: exponential back-off up to max_retries, then the interval', async () => {
    const v = fake()
    for (let i = 0; i < 3; i++)
      v.once('POST', /attestations$/, () => new Response('x', { status: 503 }))
    const a = setup(v.fetch)
    expect(await a.loop.cycle()).toMatchObject({ kind: 'accepted' })
    expect(a.sleeps).toEqual([100, 200, 400])

    const down: FetchLike = async () => {
      throw new TypeError('connect ECONNREFUSED 127.0.0.1:8881')
    }
    const b = setup(down, { backoff: { initialDelayMs: 100, maxRetries: 5, maxDelayMs: 500 } })
    const out = await b.loop.cycle()
    expect(out).toMatchObject({ kind: 'failed', code: 'ERR_AGENT_PUSH_NETWORK', waitMs: 60_000 })
    expect(b.sleeps).toEqual([100, 200, 400, 500, 500])
  })

  test('Location on another origin: no evidence (and no token) sent there', async () => {
    const v = fake({ location: () => 'https://elsewhere.test/v3.0/agents/x/attestations/0' })
    const { loop } = setup(v.fetch)
    const out = await loop.cycle()
    expect(out).toMatchObject({ kind: 'failed', code: 'ERR_AGENT_PUSH_ANSWER' })
    expect(v.seen.filter((r) => r.method === 'PATCH' && r.path.includes('attestations'))).toEqual(
      [],
    )
    const abs = fake({ location: (i) => `${URL_BASE}/v3.0/agents/${AGENT}/attestations/${i}` })
    expect(await setup(abs.fetch).loop.cycle()).toMatchObject({ kind: 'accepted' })
  })

  test('seconds_to_next_attestation: missing or invalid → interval; 0 → 1 s; huge → 1 day', async () => {
    for (const [meta, wait] of [
      [undefined, 60_000],
      [{ seconds_to_next_attestation: 'soon' }, 60_000],
      [{ seconds_to_next_attestation: -4 }, 60_000],
      [{ seconds_to_next_attestation: 0 }, 1000],
      [{ seconds_to_next_attestation: 10 ** 12 }, 86_400_000],
    ] as const) {
      const v = fake({ meta: meta ?? null })
      expect(await setup(v.fetch).loop.cycle()).toMatchObject({ kind: 'accepted', waitMs: wait })
    }
  })

  test('the token is renewed before token_expires_at', async () => {
    let now = Date.now()
    const v = fake({ tokenExpiresAt: () => new Date(now + 60_000).toISOString() })
    const { loop } = setup(v.fetch, { now: () => now })
    await loop.cycle()
    now += 40_000 // within the last quarter of the 60 s lifetime
    await loop.cycle()
    expect(v.sessionsCreated).toBe(1)
    now += 6_000
    await loop.cycle()
    expect(v.sessionsCreated).toBe(2)
  })

  const malformed: [string, (v: FakePushVerifier) => void, string][] = [
    [
      'session answer not JSON',
      (v) => v.once('POST', /sessions$/, () => new Response('<html>', { status: 200 })),
      'ERR_AGENT_PUSH_ANSWER',
    ],
    [
      'challenge not base64',
      (v) =>
        v.once('POST', /sessions$/, () =>
          Response.json({
            data: {
              id: 's',
              attributes: {
                authentication_requested: [
                  { authentication_type: 'tpm_pop', chosen_parameters: { challenge: '!!' } },
                ],
              },
            },
          }),
        ),
      'ERR_AGENT_PUSH_ANSWER',
    ],
    [
      'PoP evaluated as fail',
      (v) =>
        v.once('PATCH', /sessions\//, () =>
          Response.json({ data: { attributes: { evaluation: 'fail' } } }),
        ),
      'ERR_AGENT_PUSH_AUTH',
    ],
    [
      'token with a line break',
      (v) =>
        v.once('PATCH', /sessions\//, () =>
          Response.json({ data: { attributes: { evaluation: 'pass', token: 'a\r\nb' } } }),
        ),
      'ERR_AGENT_PUSH_ANSWER',
    ],
    [
      '201 without Location',
      (v) =>
        v.once('POST', /attestations$/, () =>
          Response.json({ data: { attributes: { evidence_requested: [] } } }, { status: 201 }),
        ),
      'ERR_AGENT_PUSH_ANSWER',
    ],
    [
      'evidence_requested not a list',
      (v) =>
        v.once('POST', /attestations$/, () =>
          Response.json(
            { data: { attributes: { evidence_requested: { a: 1 } } } },
            { status: 201, headers: { location: '/v3.0/x' } },
          ),
        ),
      'ERR_AGENT_PUSH_ANSWER',
    ],
    [
      'PCR 99 selected',
      (v) =>
        v.once('POST', /attestations$/, () =>
          Response.json(
            {
              data: {
                attributes: {
                  evidence_requested: [
                    {
                      evidence_type: 'tpm_quote',
                      chosen_parameters: {
                        challenge: 'AAAA',
                        hash_algorithm: 'sha256',
                        signature_scheme: 'rsassa',
                        selected_subjects: { sha256: [0, 99] },
                      },
                    },
                  ],
                },
              },
            },
            { status: 201, headers: { location: '/v3.0/x' } },
          ),
        ),
      'ERR_AGENT_PUSH_ANSWER',
    ],
    [
      'a scheme the AK does not sign with',
      (v) =>
        v.once('POST', /attestations$/, () =>
          Response.json(
            {
              data: {
                attributes: {
                  evidence_requested: [
                    {
                      evidence_type: 'tpm_quote',
                      chosen_parameters: {
                        challenge: 'AAAA',
                        hash_algorithm: 'sha384',
                        signature_scheme: 'rsapss',
                        selected_subjects: { sha384: [0] },
                      },
                    },
                  ],
                },
              },
            },
            { status: 201, headers: { location: '/v3.0/x' } },
          ),
        ),
      'ERR_AGENT_PUSH_ANSWER',
    ],
    [
      'an evidence type not offered',
      (v) =>
        v.once('POST', /attestations$/, () =>
          Response.json(
            { data: { attributes: { evidence_requested: [{ evidence_type: 'dice' }] } } },
            { status: 201, headers: { location: '/v3.0/x' } },
          ),
        ),
      'ERR_AGENT_PUSH_ANSWER',
    ],
    [
      'an answer larger than the cap',
      (v) =>
        v.once(
          'POST',
          /attestations$/,
          () => new Response('x'.repeat(9 * 1024 * 1024), { status: 201 }),
        ),
      'ERR_AGENT_PUSH_ANSWER',
    ],
    [
      '422 on the evidence',
      (v) => v.once('PATCH', /attestations\/\d+$/, () => new Response('{}', { status: 422 })),
      'ERR_AGENT_PUSH_STATUS',
    ],
  ]
  for (const [name, arrange, code] of malformed) {
    test(`malformed answer: ${name} → ${code}, wait the interval`, async () => {
      const v = fake()
      arrange(v)
      const out = await setup(v.fetch).loop.cycle()
      expect(out).toMatchObject({ kind: 'failed', code, waitMs: 60_000 })
    })
  }

  test('an ECC AK (ecdsa): Certify proof and quotes verify the same way', async () => {
    const ecc = await openSwtpmAgentTpm(swtpm, work, 'ecc')
    try {
      const v = new FakePushVerifier({ agentId: AGENT, akTpm2b: ecc.akTpm2b })
      const { loop } = pushAgentHarness({ tpm: ecc, agentId: AGENT, fetch: v.fetch })
      expect(await loop.cycle()).toMatchObject({ kind: 'accepted' })
      type Caps = {
        attributes: { evidence_supported: { capabilities: { certification_keys: object[] } }[] }
      }
      const key = (v.lastCapabilities!.data as Caps).attributes.evidence_supported[0]!.capabilities
        .certification_keys[0]
      expect(key).toMatchObject({
        key_algorithm: 'ecc',
        key_size: 256,
        allowable_signature_schemes: ['ecdsa'],
      })
    } finally {
      await ecc.close()
    }
  })

  test('run() ends when stopped, during a wait', async () => {
    const v = fake()
    const stop = new AbortController()
    const http = new VerifierHttp({ backoff: BACKOFF, fetch: v.fetch })
    const loop = new PushAttestationLoop({
      agentId: AGENT,
      verifierUrl: URL_BASE,
      http,
      auth: new SessionAuth({ http, verifierUrl: URL_BASE, agentId: AGENT, tpm }),
      sources: { tpm, serverIdentifier: 'ak', uefiEvidenceVersion: '2.1' },
      intervalSeconds: 60,
      sleep: async () => {
        stop.abort()
        throw new AgentError('ERR_AGENT_STOPPED', 'stopped')
      },
    })
    await loop.run(stop.signal)
    expect(v.accepted).toHaveLength(1)
  })
})

/** JSON paths of `want` (rust-keylime's body) missing from `got` or of another JSON type. */
function missingFields(want: unknown, got: unknown, path = '$'): string[] {
  const kind = (x: unknown) => (Array.isArray(x) ? 'array' : x === null ? 'null' : typeof x)
  if (kind(want) !== kind(got)) return [`${path}: ${kind(want)} ≠ ${kind(got)}`]
  if (Array.isArray(want)) {
    return want.flatMap((w, i) => missingFields(w, (got as unknown[])[i], `${path}[${i}]`))
  }
  if (kind(want) !== 'object') return []
  const g = got as Record<string, unknown>
  return Object.entries(want as Record<string, unknown>).flatMap(([k, w]) =>
    // available_subjects' banks depend on the TPM: compare the bank lists' type only
    path.endsWith('.available_subjects') ? [] : missingFields(w, g[k], `${path}.${k}`),
  )
}
