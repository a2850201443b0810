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
import type { KeylimeApp } from '../../src/http/create-app.ts'
import { setLogSink } from '../../src/log/logger.ts'
import { makeSoftwareAk, makeSoftwareEk, SoftwareAgent } from '../support/software-agent.ts'
import { caseSeed, mutate, Prng } from '../support/fuzz/fuzz-parser.ts'
import { hostileEks } from '../support/hostile-ek.ts'
import { registrarTestApp } from '../support/test-registrar.ts'

const FIXTURES = join(import.meta.dir, '../fixtures/ek')
const FUZZ_CASES = 3000

const lines: string[] = []
let restoreSink: ReturnType<typeof setLogSink>
let kdb: KeylimeDatabase
let app: KeylimeApp

beforeAll(async () => {
  restoreSink = setLogSink((l) => lines.push(l), true)
  kdb = await openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
  app = registrarTestApp(kdb)
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

describe('finding 8: malformed EK public areas are a typed 400, never a 500', () => {
  const agent = new SoftwareAgent(makeSoftwareEk('rsa'), makeSoftwareAk('rsa'))
  for (const { name, tpm2b, reason } of hostileEks()) {
    test(`${name}: 400 in the envelope naming ek_tpm, no ERROR line`, async () => {
      const from = lines.length
      const ekTpm = Buffer.from(tpm2b).toString('base64')
      const body = JSON.stringify(agent.body({ ek_tpm: ekTpm }))
      const r = await send('POST', `/v2.6/agents/hostile-ek`, body)
      expect(r.status).toBe(400)
      const env = JSON.parse(r.text) as { code: number; status: string; results: unknown }
      expect(env.code).toBe(400)
      expect(env.status).toContain('ek_tpm')
      expect(env.status).toContain(reason)
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
