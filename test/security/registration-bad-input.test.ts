/**
 * Issue 17, finding 8: malformed registrations on the unauthenticated registrar port answer a
 * typed 400 in the envelope, never a 500, and log no ERROR line (a client fault is not a server
 * fault). On c9aa72c an EK TPM2B_PUBLIC with AES-192, RSA exponent 1 or an even modulus made
 * MakeCredential throw untyped OpenSSL errors → HTTP 500 with a stack trace at ERROR.
 *
 * Then a seeded fuzz of registration and activation bodies through the registrar app
 * (`app.request`): fields of every JSON type, mutated TPM structures, certificates and raw JSON
 * text; every answer must be 2xx or 4xx in the envelope, and no ERROR line may appear.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type KeylimeDatabase, openDatabase } from '../../src/db/index.ts'
import { addVersionRoutes } from '../../src/http/add-version-routes.ts'
import { createApp, type KeylimeApp } from '../../src/http/create-app.ts'
import { getLogger, setLogSink } from '../../src/log/logger.ts'
import { addRegistrarRoutes } from '../../src/registrar/routes.ts'
import { RegistrarService } from '../../src/registrar/service.ts'
import {
  makeSoftwareAk,
  makeSoftwareEk,
  SoftwareAgent,
} from '../../src/registrar/software-agent.ts'
import { TPM_ALG_ID } from '../../src/tpm/constants.ts'
import { caseSeed, mutate, Prng } from '../../src/tpm/fuzz.ts'
import {
  serializeTpm2bPublic,
  type TpmPublic,
  type TpmPublicInput,
} from '../../src/tpm/public-area.ts'

const FIXTURES = join(import.meta.dir, '../fixtures/ek')
const FUZZ_CASES = 3000

const lines: string[] = []
let restoreSink: ReturnType<typeof setLogSink>
let kdb: KeylimeDatabase
let app: KeylimeApp

beforeAll(async () => {
  restoreSink = setLogSink((l) => lines.push(l), true)
  kdb = await openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
  const log = getLogger('registrar')
  const service = new RegistrarService({
    database: kdb,
    log,
    certStore: { get: () => new Error('no store') },
  })
  app = createApp({ log, maxUploadSize: 64 * 1024 })
  addVersionRoutes(app)
  addRegistrarRoutes(app, service, 'http')
})
afterAll(async () => {
  setLogSink(restoreSink)
  await kdb?.close()
})

/** ERROR (or worse) lines logged since `from`. */
function errorLines(from = 0): string[] {
  return lines
    .slice(from)
    .filter((l) => ['ERROR', 'CRITICAL'].includes((JSON.parse(l) as { level: string }).level))
}

async function send(method: string, path: string, body: string) {
  const res = await app.request(path, {
    method,
    headers: { 'content-type': 'application/json' },
    body,
  })
  const text = await res.text()
  return { status: res.status, text }
}

function hostileEk(base: TpmPublic, change: (p: TpmPublicInput) => TpmPublicInput): string {
  return Buffer.from(serializeTpm2bPublic(change(base as TpmPublicInput))).toString('base64')
}

describe('finding 8: malformed EK public areas are a typed 400, never a 500', () => {
  const agent = new SoftwareAgent(makeSoftwareEk('rsa'), makeSoftwareAk('rsa'))
  const ecc = makeSoftwareEk('ecc').pub
  const rsa = agent.ek.pub
  const cases: [string, string][] = [
    [
      'AES-192 symmetric',
      hostileEk(rsa, (p) => ({ ...p, symmetric: { ...p.symmetric, keyBits: 192 } })),
    ],
    [
      'ECC with AES-192',
      hostileEk(ecc, (p) => ({ ...p, symmetric: { ...p.symmetric, keyBits: 192 } })),
    ],
    ['RSA exponent 1', hostileEk(rsa, (p) => (p.type === 'rsa' ? { ...p, exponent: 1 } : p))],
    [
      'an even RSA modulus',
      hostileEk(rsa, (p) => {
        if (p.type !== 'rsa') return p
        const n = new Uint8Array(p.unique.n)
        n[n.length - 1]! &= 0xfe
        return { ...p, unique: { n } }
      }),
    ],
    [
      'CBC mode',
      hostileEk(rsa, (p) => ({ ...p, symmetric: { ...p.symmetric, mode: TPM_ALG_ID.CBC } })),
    ],
    [
      'an ECC point off the curve',
      hostileEk(ecc, (p) => {
        if (p.type !== 'ecc') return p
        const y = new Uint8Array(p.unique.y)
        y[3]! ^= 0x10
        return { ...p, unique: { x: p.unique.x, y } }
      }),
    ],
    [
      'an unknown nameAlg',
      hostileEk(rsa, (p) => ({ ...p, nameAlg: 0x0012, authPolicy: new Uint8Array(0) })),
    ],
  ]
  for (const [name, ekTpm] of cases) {
    test(`${name}: 400 in the envelope, no ERROR line`, async () => {
      const from = lines.length
      const r = await send(
        'POST',
        `/v2.6/agents/hostile-ek`,
        JSON.stringify(agent.body({ ek_tpm: ekTpm })),
      )
      expect(r.status).toBe(400)
      const env = JSON.parse(r.text) as { code: number; status: string; results: unknown }
      expect(env.code).toBe(400)
      expect(env.status).toContain('ek_tpm')
      expect(env.results).toEqual({})
      expect(errorLines(from)).toEqual([])
    })
  }
})

describe('fuzzed registration and activation bodies', () => {
  test(`${FUZZ_CASES} cases: only 2xx/4xx in the envelope, no ERROR line`, async () => {
    const agents = [
      new SoftwareAgent(makeSoftwareEk('rsa'), makeSoftwareAk('rsa')),
      new SoftwareAgent(makeSoftwareEk('ecc'), makeSoftwareAk('ecc')),
    ]
    const fixtureEk = readFileSync(join(FIXTURES, 'ek-rsa2048.pub')).toString('base64')
    const fixtureCert = readFileSync(join(FIXTURES, 'ek-rsa2048.der'))
    const pem = `-----BEGIN CERTIFICATE-----\n${fixtureCert.toString('base64')}\n-----END CERTIFICATE-----\n`
    const bases: Record<string, unknown>[] = [
      agents[0]!.body(),
      agents[1]!.body(),
      agents[0]!.body({
        ek_tpm: fixtureEk,
        ekcert: pem + readFileSync(join(FIXTURES, 'intermediate.pem'), 'utf8'),
      }),
      agents[1]!.body({ ekcert: fixtureCert.toString('base64'), mtls_cert: pem }),
    ]
    const binarySeeds = bases.flatMap((b) =>
      ['aik_tpm', 'ek_tpm'].map((k) => Uint8Array.from(Buffer.from(String(b[k]), 'base64'))),
    )
    const textSeeds = [Buffer.from(pem), Buffer.from(JSON.stringify(bases[2]))]
    const values = (p: Prng): unknown =>
      p.pick<unknown>([
        null,
        true,
        0,
        -1,
        1e308,
        65536,
        '',
        'emulator',
        'disabled',
        '=',
        '\u0000',
        'x'.repeat(5000),
        [],
        [1, 'a'],
        {},
        { toString: 1 },
        Buffer.from(p.bytes(p.int(300))).toString('base64'),
      ])
    const ids = ['fz-a', 'fz-b', 'fz-c', 'bad id', 'x'.repeat(81), '..', '%00']
    const from = lines.length
    const statuses = new Map<number, number>()
    for (let i = 0; i < FUZZ_CASES; i++) {
      const p = new Prng(caseSeed(20261207, i))
      const body: Record<string, unknown> = { ...p.pick(bases) }
      const keys = Object.keys(body)
      let text: string
      switch (p.int(6)) {
        case 0: // a field of another JSON type, or removed
          if (p.int(4) === 0) delete body[p.pick(keys)]
          else
            body[p.pick([...keys, 'agent_id', 'iak_tpm', 'iak_attest', 'iak_sign', 'idevid_tpm'])] =
              values(p)
          text = JSON.stringify(body)
          break
        case 1:
        case 2: {
          // a mutated TPM structure
          const field = p.pick(['aik_tpm', 'ek_tpm', 'iak_tpm', 'idevid_tpm', 'iak_attest'])
          body[field] = Buffer.from(mutate(binarySeeds, p.next())).toString('base64')
          text = JSON.stringify(body)
          break
        }
        case 3: // a mutated certificate text
          body[p.pick(['ekcert', 'mtls_cert', 'iak_cert', 'idevid_cert'])] = Buffer.from(
            mutate(textSeeds, p.next()),
          ).toString('latin1')
          text = JSON.stringify(body)
          break
        case 4: // mutated JSON text
          text = Buffer.from(mutate(textSeeds, p.next())).toString('latin1')
          break
        default: // an activation with a random tag
          text = JSON.stringify({
            auth_tag: p.int(2) === 0 ? values(p) : Buffer.from(p.bytes(48)).toString('hex'),
          })
      }
      const id = p.pick(ids)
      const [method, path] = text.startsWith('{"auth_tag"')
        ? [
            p.pick(['PUT', 'POST']),
            p.int(2) === 0
              ? `/v2.6/agents/${encodeURIComponent(id)}`
              : `/v3.0/agents/${encodeURIComponent(id)}/activate`,
          ]
        : ['POST', `/v2.6/agents/${encodeURIComponent(id)}`]
      const r = await send(method, path, text)
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
      if (r.status >= 500)
        throw new Error(
          `case ${i}: ${r.status} ${r.text} for ${method} ${path} ${text.slice(0, 500)}`,
        )
      const env = JSON.parse(r.text) as { code: number }
      expect(env.code).toBe(r.status)
    }
    expect(errorLines(from)).toEqual([])
    // The fuzz reaches past decoding: some registrations succeed, many are refused.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0)
    expect(statuses.get(400) ?? 0).toBeGreaterThan(FUZZ_CASES / 4)
  }, 120_000)
})
