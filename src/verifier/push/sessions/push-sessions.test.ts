/**
 * PushSessions and SessionTokens on PGlite with software AKs: the order of upstream's checks,
 * one token per proof even when answered twice at once, and the token cache against changes made
 * by another verifier. The TPM-made proofs over TLS are in test/push-sessions.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { eq } from 'drizzle-orm'
import { type KeylimeDatabase, openDatabase, sessions } from '../../../db/index.ts'
import { getLogger } from '../../../log/logger.ts'
import { isoMicros } from '../../../protocol/iso-micros.ts'
import { certifyAttest, makeSoftwareAk, tpmSign } from '../../../../test/support/software-agent.ts'
import { SessionStore } from '../../store/sessions.ts'
import { PushSessions, type SessionLimits } from './push-sessions.ts'
import { RateLimiter } from './rate-limiter.ts'
import { TokenHasher } from './session-token.ts'
import { CACHE_TTL_MS, SessionTokens } from './session-tokens.ts'

const log = getLogger('test')
const ak = makeSoftwareAk('ecc')
const AGENT = 'agent-1'
const LIMITS: SessionLimits = {
  nonceLifetime: 60,
  sessionLifetime: 180,
  perIp: 50,
  windowIp: 60,
  perAgent: 15,
  windowAgent: 60,
}

let kdb: KeylimeDatabase
const key = randomBytes(32)

/** One verifier's session parts over the shared database. */
function verifier(limits: SessionLimits = LIMITS) {
  const store = new SessionStore(kdb.db)
  const tokens = new SessionTokens(store, new TokenHasher(key), log)
  store.onDeleted = (ids) => tokens.forget(ids)
  const enrolled = Buffer.from(ak.tpm2b).toString('base64')
  const ops = new PushSessions({
    store,
    enrolledAk: async (id) => (id === AGENT ? enrolled : undefined),
    tokens,
    limiter: new RateLimiter(),
    limits,
    log,
  })
  return { store, tokens, ops }
}

const create = (agentId: unknown, types = ['tpm_pop']) => ({
  data: {
    attributes: {
      agent_id: agentId,
      authentication_supported: types.map((t) => ({ authentication_type: t })),
    },
  },
})

function proof(challengeB64: string, agentId = AGENT) {
  const attest = certifyAttest(ak, Buffer.from(challengeB64, 'base64'))
  const data = {
    message: Buffer.from(attest).toString('base64'),
    signature: Buffer.from(tpmSign(ak, attest)).toString('base64'),
  }
  return {
    data: {
      attributes: {
        agent_id: agentId,
        authentication_provided: [{ authentication_type: 'tpm_pop', data }],
      },
    },
  }
}

async function challenge(v: ReturnType<typeof verifier>) {
  const r = await v.ops.create(create(AGENT), '10.0.0.1')
  const d = r.body.data as {
    id: string
    attributes: { authentication_requested: { chosen_parameters: { challenge: string } }[] }
  }
  const ch = d.attributes.authentication_requested[0]!
  return { id: d.id, challenge: ch.chosen_parameters.challenge }
}

beforeAll(async () => {
  kdb = await openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
})
afterAll(async () => {
  await kdb.close()
})

describe('PushSessions', () => {
  test('create: IP limit first, then agent_id, then the agent limit, then tpm_pop', async () => {
    const v = verifier({ ...LIMITS, perIp: 2, perAgent: 1 })
    expect((await v.ops.create(create(undefined), 'ip-a')).status).toBe(400) // counts for the IP
    expect((await v.ops.create(create('a', ['other']), 'ip-a')).status).toBe(400) // counts for a
    expect((await v.ops.create(create('b'), 'ip-a')).status).toBe(429) // IP exhausted
    const byAgent = await v.ops.create(create('a'), 'ip-b')
    expect(byAgent.status).toBe(429)
    expect(byAgent.headers).toEqual({ 'Retry-After': '60' })
    expect((await v.ops.create(create(42), 'ip-c')).status).toBe(400)
    expect((await v.ops.create(create('../x'), 'ip-c')).status).toBe(400)
  })

  test('two answers to one challenge at once: one token, the other 404', async () => {
    const v = verifier()
    const w = verifier() // another verifier on the same database
    const c = await challenge(v)
    const body = proof(c.challenge)
    const [r1, r2] = await Promise.all([v.ops.prove(c.id, body), w.ops.prove(c.id, body)])
    expect([r1.status, r2.status].sort()).toEqual([200, 404])
    const rows = await kdb.db.select().from(sessions).where(eq(sessions.session_id, c.id))
    expect(rows.length).toBe(1)
    expect(rows[0]?.active).toBe(true)
  })

  test('the token cache sees another verifier’s deletion and extension within its time', async () => {
    const v = verifier()
    const other = verifier()
    const issue = async () => {
      const c = await challenge(v)
      const res = await v.ops.prove(c.id, proof(c.challenge))
      return (res.body.data as { attributes: { token: string } }).attributes.token
    }
    // deleted elsewhere: still cached here until the cache time has passed
    const first = await issue()
    const t0 = Date.now()
    expect(await v.tokens.check(first, t0)).toEqual({ ok: true, agentId: AGENT })
    await other.store.deleteActive(AGENT)
    expect((await v.tokens.check(first, t0)).ok).toBe(true)
    expect(await v.tokens.check(first, t0 + CACHE_TTL_MS + 1)).toEqual({
      ok: false,
      detail: 'Invalid authentication token',
    })
    // extended elsewhere: an entry that looks expired is read again before refusing
    const second = await issue()
    const t1 = Date.now()
    expect((await v.tokens.check(second, t1)).ok).toBe(true)
    await other.store.extendAgentToken(AGENT, t1 + 100_000)
    expect(await v.tokens.check(second, t1 + 200_000)).toEqual({ ok: true, agentId: AGENT })
    expect(await v.tokens.check(second, t1 + 300_000)).toEqual({
      ok: false,
      detail: 'Authentication token expired',
    })
  })

  test('a deletion on this verifier ends the token at once', async () => {
    const v = verifier()
    const c = await challenge(v)
    const token = (
      (await v.ops.prove(c.id, proof(c.challenge))).body.data as { attributes: { token: string } }
    ).attributes.token
    expect((await v.tokens.check(token)).ok).toBe(true)
    await v.store.deleteActive(AGENT)
    expect((await v.tokens.check(token)).ok).toBe(false)
  })

  test('stale sessions of the agent are purged when it asks again; all at start', async () => {
    const v = verifier()
    const c = await challenge(v)
    await kdb.db
      .update(sessions)
      .set({ nonce_expires_at: isoMicros(Date.now() - 1) })
      .where(eq(sessions.session_id, c.id))
    await challenge(v)
    expect((await kdb.db.select().from(sessions).where(eq(sessions.session_id, c.id))).length).toBe(
      0,
    )
    const d = await challenge(v)
    expect(await v.store.purgeExpired(Date.now() + 61_000)).toBeGreaterThanOrEqual(1)
    expect((await kdb.db.select().from(sessions).where(eq(sessions.session_id, d.id))).length).toBe(
      0,
    )
  })
})
