/**
 * The session routes answer hostile bodies with a 4xx in upstream's error or session shape, never
 * a 500 or the v2 envelope.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { tmpdir } from 'node:os'
import { type KeylimeDatabase, openDatabase } from '../../../db/index.ts'
import { createApp } from '../../../http/create-app.ts'
import { getLogger } from '../../../log/logger.ts'
import { SessionStore } from '../../store/sessions.ts'
import { PushSessions } from './push-sessions.ts'
import { RateLimiter } from './rate-limiter.ts'
import { addSessionRoutes } from './session-routes.ts'
import { TokenHasher } from './session-token.ts'
import { SessionTokens } from './session-tokens.ts'

const log = getLogger('test')
let kdb: KeylimeDatabase
let app: ReturnType<typeof createApp>

beforeAll(async () => {
  kdb = await openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
  const store = new SessionStore(kdb.db)
  app = createApp({ log })
  addSessionRoutes(
    app,
    new PushSessions({
      store,
      // an enrolled agent whose ak_tpm is garbage: the proof check must still answer 401
      enrolledAk: async (id) => (id === 'enrolled' ? 'AAEC' : undefined),
      tokens: new SessionTokens(store, new TokenHasher(randomBytes(32)), log),
      limiter: new RateLimiter(),
      limits: {
        nonceLifetime: 60,
        sessionLifetime: 180,
        perIp: 0,
        windowIp: 60,
        perAgent: 0,
        windowAgent: 60,
      },
      log,
    }),
  )
})
afterAll(async () => {
  await kdb.close()
})

const send = (method: string, path: string, body: string, type = 'application/vnd.api+json') =>
  app.request(path, { method, headers: { 'content-type': type }, body })

describe('session routes on hostile input', () => {
  const bodies = [
    '',
    'null',
    '[]',
    '"x"',
    '{"data":[]}',
    '{"data":{"attributes":[]}}',
    '{"data":{"attributes":{"agent_id":{"x":1}}}}',
    `{"data":{"attributes":{"agent_id":"${'a'.repeat(300)}"}}}`,
    '{"data":{"attributes":{"agent_id":"enrolled","authentication_supported":"tpm_pop"}}}',
    '{"data":{"attributes":{"agent_id":"enrolled","authentication_supported":[null,1,"x"]}}}',
    '{"data":',
    `{"data":{"attributes":{"agent_id":"x","n":${'['.repeat(5000)}${']'.repeat(5000)}}}}`,
  ]
  test('POST /sessions: 400 in upstream shape', async () => {
    for (const b of bodies) {
      const res = await send('POST', '/v3.0/sessions', b)
      expect(res.status).toBe(400)
      const json = (await res.json()) as { errors: { status: string; title: string }[] }
      expect(json.errors[0]?.title).toBe('Bad Request')
    }
    const typed = await send('POST', '/v3/sessions', '{}', 'text/plain')
    expect(typed.status).toBe(415)
  })

  test('PATCH /sessions/:id: 400/404/401, never 500', async () => {
    for (const b of bodies) {
      const res = await send('PATCH', `/v3/sessions/${randomUUID()}`, b)
      expect([400, 404]).toContain(res.status)
    }
    const created = await send(
      'POST',
      '/v3/sessions',
      '{"data":{"attributes":{"agent_id":"enrolled","authentication_supported":[{"authentication_type":"tpm_pop"}]}}}',
    )
    const sid = ((await created.json()) as { data: { id: string } }).data.id
    const statuses: number[] = []
    for (const data of [
      { message: 'not base64!', signature: 'AAAA' },
      { message: 'AAAA', signature: 'A'.repeat(100_000) },
      { message: 12, signature: ['x'] },
    ]) {
      const res = await send(
        'PATCH',
        `/v3/sessions/${sid}`,
        JSON.stringify({
          data: {
            attributes: {
              agent_id: 'enrolled',
              authentication_provided: [{ authentication_type: 'tpm_pop', data }],
            },
          },
        }),
      )
      statuses.push(res.status)
    }
    // the first answer ends the session: 401 once, then 404
    expect(statuses).toEqual([401, 404, 404])
  })
})
