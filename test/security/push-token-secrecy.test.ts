/**
 * Push-mode bearer tokens stay secret and cheap to check: over a session's whole life at DEBUG
 * level (challenge, proof, accepted and refused tokens, a failed proof, a token from a replaced
 * session, an expired one), no log line and no answer but the proof's own carries the token, its
 * secret part or its stored hash, and the key file is 0600. A token check is an HMAC and a
 * constant-time compare (microseconds), not upstream's PBKDF2 with 600 000 iterations (~0.3 s of
 * CPU per check, which garbage tokens could make anyone spend).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { eq } from 'drizzle-orm'
import { type KeylimeDatabase, sessions, verifiermain } from '../../src/db/index.ts'
import { getLogger, type LogSink, setLogLevel, setLogSink } from '../../src/log/logger.ts'
import { AGENT_STATES } from '../../src/protocol/agent-states.ts'
import { isoMicros } from '../../src/protocol/iso-micros.ts'
import { newSessionToken, TokenHasher } from '../../src/verifier/push/sessions/session-token.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { databaseTargets } from '../support/databases.ts'
import { certifyAttest, makeSoftwareAk, tpmSign } from '../support/software-agent.ts'
import { createTestCa, startTestVerifier, type TestCa } from '../support/verifier-harness.ts'

const [pglite] = databaseTargets()
const AGENT = 'secret-token-agent'
const ak = makeSoftwareAk('rsa')

describe('push token secrecy and cost', () => {
  const lines: string[] = []
  const answers: string[] = []
  let previous: LogSink
  let kdb: KeylimeDatabase
  let ca: TestCa
  let v: VerifierHandle

  async function call(method: string, path: string, body?: unknown, token?: string) {
    const headers: Record<string, string> = { 'content-type': 'application/vnd.api+json' }
    if (token !== undefined) headers.Authorization = `Bearer ${token}`
    const res = await v.app.request(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.text()
    answers.push(text)
    return { status: res.status, json: text ? JSON.parse(text) : undefined }
  }

  /** A challenge, then the software AK's proof (or one over other bytes); the answer. */
  async function authenticate(good = true) {
    const created = await call('POST', '/v3.0/sessions', {
      data: {
        attributes: {
          agent_id: AGENT,
          authentication_supported: [{ authentication_type: 'tpm_pop' }],
        },
      },
    })
    const sid: string = created.json.data.id
    const ch = created.json.data.attributes.authentication_requested[0].chosen_parameters.challenge
    const attest = certifyAttest(ak, good ? Buffer.from(ch, 'base64') : randomBytes(16))
    const data = {
      message: Buffer.from(attest).toString('base64'),
      signature: Buffer.from(tpmSign(ak, attest)).toString('base64'),
    }
    return call('PATCH', `/v3.0/sessions/${sid}`, {
      data: {
        attributes: {
          agent_id: AGENT,
          authentication_provided: [{ authentication_type: 'tpm_pop', data }],
        },
      },
    })
  }

  beforeAll(async () => {
    previous = setLogSink((l) => lines.push(l))
    setLogLevel('DEBUG')
    getLogger().info('capturing')
    ca = await createTestCa()
    kdb = await pglite!.open()
    await kdb.db.insert(verifiermain).values({
      agent_id: AGENT,
      ak_tpm: Buffer.from(ak.tpm2b).toString('base64'),
      operational_state: AGENT_STATES.SAVED,
    })
    v = await startTestVerifier(kdb, ca, {}, { checkWorkers: 0 })
  }, 60_000)

  afterAll(async () => {
    await v?.stop(100)
    await kdb?.close()
    setLogLevel('INFO')
    setLogSink(previous)
  })

  test('no log line and no other answer carries the token, its secret or its hash', async () => {
    const first = await authenticate()
    expect(first.status).toBe(200)
    const old: string = first.json.data.attributes.token
    const proof = answers.length - 1
    const second = await authenticate()
    const token: string = second.json.data.attributes.token
    const proof2 = answers.length - 1
    expect((await call('GET', `/v2.6/agents/${AGENT}`, undefined, token)).status).toBe(200)
    expect((await call('GET', `/v2.6/agents/${AGENT}`, undefined, old)).status).toBe(401)
    expect((await call('GET', '/v2.6/agents', undefined, token)).status).toBe(403)
    expect((await call('GET', `/v2.6/agents/${AGENT}`, undefined, `${token}x`)).status).toBe(401)
    expect((await authenticate(false)).status).toBe(401)
    const sid = token.split('.')[0]!
    await kdb.db
      .update(sessions)
      .set({ token_expires_at: isoMicros(Date.now() - 1) })
      .where(eq(sessions.session_id, sid))
    await Bun.sleep(5100) // past the token cache time
    const expired = await call('GET', `/v2.6/agents/${AGENT}`, undefined, token)
    expect(expired.json.errors[0].detail).toBe('Authentication token expired')

    const hashes = (await kdb.db.select().from(sessions)).map((r) => r.token_hash)
    const secrets = [old, token, old.split('.')[1]!, token.split('.')[1]!, ...hashes].filter(
      (s) => s.length > 0,
    )
    expect(lines.some((l) => l.includes('Authentication token validated'))).toBe(true)
    for (const s of secrets) {
      for (const l of lines) expect(l).not.toContain(s)
      answers.forEach((a, i) => {
        if (i === proof || i === proof2) return // the proof's answer hands its own token over
        expect(a).not.toContain(s)
      })
    }
    expect(statSync(join(ca.keylimeDir, 'session-token.key')).mode & 0o777).toBe(0o600)
  }, 30_000)

  test('a token check costs microseconds (HMAC, no PBKDF2)', async () => {
    const hasher = new TokenHasher(randomBytes(32))
    const token = newSessionToken(randomUUID())
    const stored = hasher.hash(token)
    const n = 2000
    let t = performance.now()
    for (let i = 0; i < n; i++) hasher.matches(token, stored)
    const perHash = ((performance.now() - t) * 1000) / n
    expect(perHash).toBeLessThan(100) // µs; PBKDF2-600k is ~300 000 µs
    // a cached check through the verifier's token checks, as each agent request makes it
    const issued: string = (await authenticate()).json.data.attributes.token
    await v.sessions.tokens.check(issued)
    t = performance.now()
    for (let i = 0; i < n; i++) await v.sessions.tokens.check(issued)
    const perCheck = ((performance.now() - t) * 1000) / n
    expect(perCheck).toBeLessThan(500)
    // garbage tokens are refused before any database read or hash
    t = performance.now()
    for (let i = 0; i < n; i++) await v.sessions.tokens.check('garbage')
    expect(((performance.now() - t) * 1000) / n).toBeLessThan(100)
  })
})
