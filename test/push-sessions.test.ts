/**
 * Push-mode authentication end to end, over real TLS with a real TPM (swtpm, AKs made by
 * tpm2-tools, the proof a raw TPM2_Certify sent by `tpm2_send`), on PGlite and PostgreSQL
 * (TEST_DATABASE_URL). Mirrors keylime-tests `functional/push-authentication-basic`, `-protocol`,
 * `-rate-limiting`, `-token-lifecycle`, `-persistence` and `-cross-agent-attestation` as far as
 * sessions and tokens go (the attestation halves come with the attestation routes).
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { type KeylimeDatabase, sessions, verifiermain } from '../src/db/index.ts'
import { AGENT_STATES } from '../src/protocol/agent-states.ts'
import { isoMicros } from '../src/protocol/iso-micros.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { databaseTargets } from './support/databases.ts'
import { missingTpm2ToolsAgentTools, Tpm2ToolsAgent } from './support/tpm2-tools-agent.ts'
import { certifySelf, persistAk } from './support/tpm2-tools-certify.ts'
import { createTestCa, startTestVerifier, type TestCa } from './support/verifier-harness.ts'

const missing = [
  ...missingTpm2ToolsAgentTools(),
  ...['tpm2_send', 'tpm2_evictcontrol'].filter((t) => Bun.which(t) === null),
]
if (missing.length > 0) console.log(`skip: push sessions e2e (missing ${missing.join(', ')})`)

const AK_HANDLE = { rsa: 0x81010010, ecc: 0x81010011 } as const
const JSON_API = { 'content-type': 'application/vnd.api+json' }

/** One verifier's base URL and TLS options (no client certificate: an agent). */
interface Target {
  url: string
  ca: string[]
}

async function call(
  t: Target,
  method: string,
  path: string,
  opts: { body?: unknown; token?: string; headers?: Record<string, string>; admin?: TestCa } = {},
) {
  const headers: Record<string, string> = { ...JSON_API, ...opts.headers }
  if (opts.token !== undefined) headers.Authorization = `Bearer ${opts.token}`
  const tls = opts.admin
    ? { ca: t.ca, cert: opts.admin.tls.clientCert, key: opts.admin.tls.clientKey }
    : { ca: t.ca }
  const res = await fetch(`${t.url}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    tls: { ...tls, checkServerIdentity: () => undefined },
  } as RequestInit)
  const text = await res.text()
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined }
}

const createBody = (agentId: string) => ({
  data: {
    type: 'session',
    attributes: {
      agent_id: agentId,
      authentication_supported: [{ authentication_class: 'pop', authentication_type: 'tpm_pop' }],
    },
  },
})

const proofBody = (sessionId: string, agentId: string, message: string, signature: string) => ({
  data: {
    type: 'session',
    id: sessionId,
    attributes: {
      agent_id: agentId,
      authentication_provided: [
        {
          authentication_class: 'pop',
          authentication_type: 'tpm_pop',
          data: { message, signature },
        },
      ],
    },
  },
})

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')

for (const target of missing.length > 0 ? [] : databaseTargets()) {
  describe(`push sessions over TLS with swtpm (${target.name})`, () => {
    let ca: TestCa
    let kdb: KeylimeDatabase
    let tpm: Tpm2ToolsAgent
    let a: VerifierHandle
    let b: VerifierHandle
    const aks: Record<'rsa' | 'ecc', Buffer> = {} as never
    const ids = { rsa: `push-rsa-${target.name}`, ecc: `push-ecc-${target.name}` }
    const at = (v: VerifierHandle): Target => ({ url: v.servers[0]!.url, ca: ca.tls.ca })

    /** Challenge on `on`, proof by the TPM for `kind` (or `prove` overriding it) on `answer`. */
    async function authenticate(
      kind: 'rsa' | 'ecc',
      on: Target,
      answer: Target = on,
      agentId = ids[kind],
    ) {
      const created = await call(on, 'POST', '/v3.0/sessions', { body: createBody(agentId) })
      expect(created.status).toBe(200)
      const sid: string = created.json.data.id
      const challenge = Buffer.from(
        created.json.data.attributes.authentication_requested[0].chosen_parameters.challenge,
        'base64',
      )
      const { attest, signature } = certifySelf(tpm, AK_HANDLE[kind], challenge)
      const proved = await call(answer, 'PATCH', `/v3.0/sessions/${sid}`, {
        body: proofBody(sid, agentId, b64(attest), b64(signature)),
      })
      return { created, proved, sid, challenge, attest, signature }
    }

    beforeAll(async () => {
      ca = await createTestCa()
      kdb = await target.open()
      tpm = await Tpm2ToolsAgent.start()
      for (const kind of ['rsa', 'ecc'] as const) {
        aks[kind] = tpm.createAk(kind, kind)
        persistAk(tpm, kind, AK_HANDLE[kind])
        // enrolled as the verifier keeps it (ak_tpm from the registrar); a state not polled
        await kdb.db.insert(verifiermain).values({
          agent_id: ids[kind],
          ak_tpm: b64(aks[kind]),
          operational_state: AGENT_STATES.SAVED,
          verifier_id: 'default',
        })
      }
      a = await startTestVerifier(kdb, ca, {}, { instanceId: 'A', checkWorkers: 0 })
      b = await startTestVerifier(kdb, ca, {}, { instanceId: 'B', checkWorkers: 0 })
    }, 120_000)

    afterAll(async () => {
      await a?.stop(0)
      await b?.stop(0)
      await tpm?.remove()
      await kdb?.close()
    })

    for (const kind of ['rsa', 'ecc'] as const) {
      test(`${kind} AK: challenge, proof, token; the token opens the agent's own resources only`, async () => {
        const t = at(a)
        const before = Date.now()
        const { created, proved, sid } = await authenticate(kind, t)
        expect(created.headers.get('content-type')).toStartWith('application/json')
        const attrs = created.json.data.attributes
        expect(created.json.data.type).toBe('session')
        expect(attrs.agent_id).toBe(ids[kind])
        expect(attrs.token).toBeUndefined()
        expect(attrs.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/)
        expect(Date.parse(attrs.challenges_expire_at) - Date.parse(attrs.created_at)).toBe(60_000)
        expect(proved.status).toBe(200)
        const p = proved.json.data.attributes
        expect(p.evaluation).toBe('pass')
        expect(p.token).toMatch(new RegExp(`^${sid}\\.[A-Za-z0-9_-]{43}$`))
        const lifetime = Date.parse(p.token_expires_at) - before
        expect(lifetime).toBeGreaterThanOrEqual(180_000)
        expect(lifetime).toBeLessThan(190_000)
        expect(p.authentication[0].chosen_parameters.challenge).toBe(
          attrs.authentication_requested[0].chosen_parameters.challenge,
        )
        // the database holds the HMAC, never the token
        const row = (await kdb.db.select().from(sessions).where(eq(sessions.session_id, sid)))[0]
        expect(row?.active).toBe(true)
        expect(row?.token_hash).toMatch(/^[0-9a-f]{64}$/)
        expect(JSON.stringify(row)).not.toContain(p.token.split('.')[1])
        // read_agent (agent or admin): its own status, not another agent's
        const own = await call(t, 'GET', `/v2.6/agents/${ids[kind]}`, { token: p.token })
        expect(own.status).toBe(200)
        const other = kind === 'rsa' ? ids.ecc : ids.rsa
        const cross = await call(t, 'GET', `/v2.6/agents/${other}`, { token: p.token })
        expect(cross.status).toBe(403)
        // submit_attestation (agent only): through the access check for itself (the attestation
        // routes are another part: 404 here), 403 for another agent
        // (keylime-tests push-authentication-cross-agent-attestation)
        const mine = await call(t, 'POST', `/v3.0/agents/${ids[kind]}/attestations`, {
          token: p.token,
          body: {},
        })
        expect([401, 403]).not.toContain(mine.status)
        const theirs = await call(t, 'POST', `/v3.0/agents/${other}/attestations`, {
          token: p.token,
          body: {},
        })
        expect(theirs.status).toBe(403)
        expect(theirs.json.errors[0].detail).toBe(
          `Agent ${ids[kind]} cannot access resource ${other} (ownership required)`,
        )
      })
    }

    test('a bad proof is 401 with evaluation fail and no token; the session is gone', async () => {
      const t = at(a)
      const created = await call(t, 'POST', '/v3/sessions', { body: createBody(ids.rsa) })
      const sid: string = created.json.data.id
      const { attest, signature } = certifySelf(tpm, AK_HANDLE.rsa, randomBytes(16))
      const res = await call(t, 'PATCH', `/v3/sessions/${sid}`, {
        body: proofBody(sid, ids.rsa, b64(attest), b64(signature)),
      })
      expect(res.status).toBe(401)
      const attrs = res.json.data.attributes
      expect(attrs.evaluation).toBe('fail')
      expect(attrs.token).toBeUndefined()
      expect(attrs.token_expires_at).toBeUndefined()
      expect(attrs.response_received_at).toBeString()
      expect(attrs.authentication[0].data.message).toBe(b64(attest))
      // the ECC AK's proof for the RSA agent: not its AK
      const again = await call(t, 'POST', '/v3/sessions', { body: createBody(ids.rsa) })
      const sid2: string = again.json.data.id
      const ch = Buffer.from(
        again.json.data.attributes.authentication_requested[0].chosen_parameters.challenge,
        'base64',
      )
      const ecc = certifySelf(tpm, AK_HANDLE.ecc, ch)
      const wrongAk = await call(t, 'PATCH', `/v3/sessions/${sid2}`, {
        body: proofBody(sid2, ids.rsa, b64(ecc.attest), b64(ecc.signature)),
      })
      expect(wrongAk.status).toBe(401)
      // keylime-tests push-authentication-protocol: empty message and signature
      const third = await call(t, 'POST', '/v3/sessions', { body: createBody(ids.rsa) })
      const sid3: string = third.json.data.id
      const empty = await call(t, 'PATCH', `/v3/sessions/${sid3}`, {
        body: proofBody(sid3, ids.rsa, '', ''),
      })
      expect(empty.status).toBe(401)
      expect(empty.json.data.attributes.evaluation).toBe('fail')
      for (const gone of [sid, sid2, sid3]) {
        const r = await call(t, 'PATCH', `/v3/sessions/${gone}`, {
          body: proofBody(gone, ids.rsa, b64(attest), b64(signature)),
        })
        expect(r.status).toBe(404)
      }
    })

    test('400 without agent_id or with another agent; 404 for an unknown session', async () => {
      const t = at(a)
      const noId = await call(t, 'POST', '/v3.0/sessions', { body: { data: { attributes: {} } } })
      expect(noId.status).toBe(400)
      expect(noId.json).toEqual({
        errors: [{ status: '400', title: 'Bad Request', detail: 'agent_id is required' }],
      })
      const created = await call(t, 'POST', '/v3/sessions', { body: createBody(ids.rsa) })
      const sid: string = created.json.data.id
      const mismatch = await call(t, 'PATCH', `/v3/sessions/${sid}`, {
        body: proofBody(sid, ids.ecc, 'AA==', 'AA=='),
      })
      expect(mismatch.status).toBe(400)
      expect(mismatch.json.errors[0].detail).toBe('Agent ID mismatch')
      const unknown = crypto.randomUUID()
      const nf = await call(t, 'PATCH', `/v3/sessions/${unknown}`, {
        body: proofBody(unknown, ids.rsa, 'AA==', 'AA=='),
      })
      expect(nf.status).toBe(404)
      expect(nf.json.errors[0].detail).toBe('Session not found')
      const garbage = await call(t, 'PATCH', '/v3/sessions/not-a-uuid', { body: '[1' })
      expect(garbage.status).toBe(400)
      expect(garbage.json.errors[0].title).toBe('Bad Request')
    })

    test('an expired challenge and an agent not enrolled: 200 with evaluation fail', async () => {
      const t = at(a)
      const created = await call(t, 'POST', '/v3/sessions', { body: createBody(ids.ecc) })
      const sid: string = created.json.data.id
      await kdb.db
        .update(sessions)
        .set({ nonce_expires_at: isoMicros(Date.now() - 1000) })
        .where(eq(sessions.session_id, sid))
      const ch = Buffer.from(
        created.json.data.attributes.authentication_requested[0].chosen_parameters.challenge,
        'base64',
      )
      const proof = certifySelf(tpm, AK_HANDLE.ecc, ch)
      const late = await call(t, 'PATCH', `/v3/sessions/${sid}`, {
        body: proofBody(sid, ids.ecc, b64(proof.attest), b64(proof.signature)),
      })
      expect(late.status).toBe(200)
      expect(late.json.data.attributes.evaluation).toBe('fail')
      expect(late.json.data.attributes.token_expires_at).toBeNull()
      expect(late.json.data.attributes.token).toBeUndefined()
      // keylime-tests push-authentication-basic: an unenrolled agent gets a challenge, then fail
      const { created: c2, proved } = await authenticate('rsa', t, t, 'not-enrolled-agent')
      expect(c2.status).toBe(200)
      expect(proved.status).toBe(200)
      expect(proved.json.data.attributes.evaluation).toBe('fail')
      expect(proved.json.data.attributes.token).toBeUndefined()
    })

    test('a challenge from one verifier is answered on another; the token works on both', async () => {
      const { proved } = await authenticate('ecc', at(a), at(b))
      expect(proved.json.data.attributes.evaluation).toBe('pass')
      const token: string = proved.json.data.attributes.token
      for (const v of [a, b]) {
        expect((await call(at(v), 'GET', `/v2/agents/${ids.ecc}`, { token })).status).toBe(200)
      }
    })

    test('a new proof ends the earlier token; garbage and expired tokens are 401', async () => {
      const t = at(a)
      const first = (await authenticate('rsa', t)).proved.json.data.attributes.token as string
      expect((await call(t, 'GET', `/v2/agents/${ids.rsa}`, { token: first })).status).toBe(200)
      const second = (await authenticate('rsa', t)).proved.json.data.attributes.token as string
      const old = await call(t, 'GET', `/v2/agents/${ids.rsa}`, { token: first })
      expect(old.status).toBe(401)
      expect(old.json).toEqual({
        errors: [{ status: '401', title: 'Unauthorized', detail: 'Invalid authentication token' }],
      })
      for (const bad of ['garbage', `${crypto.randomUUID()}.${'A'.repeat(43)}`, `${second}x`]) {
        const r = await call(t, 'GET', `/v2/agents/${ids.rsa}`, { token: bad })
        expect(r.status).toBe(401)
        expect(r.json.errors[0].detail).toBe('Invalid authentication token')
      }
      // expired: verifier B reads the row fresh
      await kdb.db
        .update(sessions)
        .set({ token_expires_at: isoMicros(Date.now() - 1000) })
        .where(eq(sessions.session_id, second.split('.')[0]!))
      const expired = await call(at(b), 'GET', `/v2/agents/${ids.rsa}`, { token: second })
      expect(expired.status).toBe(401)
      expect(expired.json.errors[0].detail).toBe('Authentication token expired')
      // and a successful attestation would extend it: extendAgentToken skips expired tokens
      expect(await a.store.sessions.extendAgentToken(ids.rsa)).toBeUndefined()
    })

    test('an admin certificate with an Authorization header is no admin', async () => {
      const t = at(a)
      const token = (await authenticate('ecc', t)).proved.json.data.attributes.token as string
      const plain = await call(t, 'GET', '/v2.6/agents', { admin: ca })
      expect(plain.status).toBe(200)
      const withToken = await call(t, 'GET', '/v2.6/agents', { admin: ca, token })
      expect(withToken.status).toBe(403)
      const withGarbage = await call(t, 'GET', '/v2.6/agents', { admin: ca, token: 'x' })
      expect(withGarbage.status).toBe(401)
    })

    test('tokens survive a verifier restart; extendAgentToken extends them', async () => {
      const token = (await authenticate('rsa', at(a))).proved.json.data.attributes.token as string
      const sid = token.split('.')[0]!
      await a.stop(0)
      a = await startTestVerifier(kdb, ca, {}, { instanceId: 'A', checkWorkers: 0 })
      expect((await call(at(a), 'GET', `/v2/agents/${ids.rsa}`, { token })).status).toBe(200)
      const row = async () =>
        (await kdb.db.select().from(sessions).where(eq(sessions.session_id, sid)))[0]
      const before = (await row())?.token_expires_at as string
      const extended = await a.store.sessions.extendAgentToken(ids.rsa, Date.now() + 5000)
      expect(extended).toBeString()
      expect((await row())?.token_expires_at).toBe(extended as string)
      expect(Date.parse(extended as string)).toBeGreaterThan(Date.parse(before))
    }, 60_000)
  })
}

describe.skipIf(missing.length > 0)(
  'push session rate limits (keylime-tests push-authentication-rate-limiting)',
  () => {
    let ca: TestCa
    let kdb: KeylimeDatabase
    let v: VerifierHandle

    beforeAll(async () => {
      ca = await createTestCa()
      kdb = await databaseTargets()[0]!.open()
      v = await startTestVerifier(
        kdb,
        ca,
        {
          session_create_rate_limit_per_agent: '3',
          session_create_rate_limit_window_agent: '10',
          session_create_rate_limit_per_ip: '5',
          session_create_rate_limit_window_ip: '10',
        },
        { checkWorkers: 0 },
      )
    }, 60_000)
    afterAll(async () => {
      await v?.stop(0)
      await kdb?.close()
    })

    test('per agent, then per IP: 429 with Retry-After (60 s, the first block)', async () => {
      const t = { url: v.servers[0]!.url, ca: ca.tls.ca }
      for (let i = 0; i < 3; i++) {
        expect(
          (await call(t, 'POST', '/v3.0/sessions', { body: createBody('rl-agent') })).status,
        ).toBe(200)
      }
      const agentBlocked = await call(t, 'POST', '/v3.0/sessions', { body: createBody('rl-agent') })
      expect(agentBlocked.status).toBe(429)
      expect(agentBlocked.headers.get('retry-after')).toBe('60')
      expect(agentBlocked.json.errors[0]).toEqual({
        status: '429',
        title: 'Too Many Requests',
        detail: 'Rate limit exceeded for this agent. Please try again later.',
      })
      // the IP has made 4 requests in the window: one more passes, the next is blocked
      expect(
        (await call(t, 'POST', '/v3.0/sessions', { body: createBody('rl-other') })).status,
      ).toBe(200)
      const ipBlocked = await call(t, 'POST', '/v3.0/sessions', { body: createBody('rl-third') })
      expect(ipBlocked.status).toBe(429)
      expect(ipBlocked.headers.get('retry-after')).toBe('60')
      expect(ipBlocked.json.errors[0].detail).toBe('Rate limit exceeded. Please try again later.')
    })
  },
)
