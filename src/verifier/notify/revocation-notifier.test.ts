/**
 * Revocation notices to agents through the verifier's one agent client: the signed `{msg,
 * signature}` body and its headers, the subject left out, failures counted, and an mTLS agent
 * notified over the connection its quotes use. The webhook body, with and without the agent's EAR
 * (`[revocations] webhook_ear`).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { constants, generateKeyPairSync, verify } from 'node:crypto'
import { type AgentCert, createAgentCert } from '../../../test/support/fleet/agent-cert.ts'
import { AgentConnections } from '../../http/agent-client/agent-connections.ts'
import { getLogger } from '../../log/logger.ts'
import { createTestCa, type TestCa } from '../../../test/support/verifier-harness.ts'
import type { FailureEvent } from '../checks/failure.ts'
import {
  type NotifyTarget,
  RevocationNotifier,
  type RevocationSubject,
} from './revocation-notifier.ts'

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const subject: RevocationSubject = {
  agentId: 'bad-agent',
  ip: '10.0.0.9',
  port: 9002,
  tpmPolicy: '{"mask": "0x400"}',
  metaData: '{}',
  revocationKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
}
const event: FailureEvent = {
  event_id: 'ima.validation.ima-ng.not_in_allowlist',
  severity_label: { name: 'critical', severity: 1 },
  context: { message: 'File not found in allowlist: /usr/bin/evil' },
  recoverable: false,
}

/** What an agent listener received. */
interface Got {
  method: string
  path: string
  contentType: string | null
  body: { msg: string; signature: string }
}

let ca: TestCa
let agentCert: AgentCert
const servers: Server<undefined>[] = []

beforeAll(async () => {
  ca = await createTestCa()
  agentCert = await createAgentCert('agent-peer')
})

afterAll(() => {
  for (const s of servers) s.stop(true)
})

/** An agent listener answering `status`; plain HTTP, or mTLS with `cert`. */
function agent(got: Got[], status = 200, cert?: AgentCert): Server<undefined> {
  const tls =
    cert === undefined
      ? undefined
      : { cert: cert.certPem, key: cert.keyPem, ca: ca.tls.ca, requestCert: true }
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    ...(tls !== undefined ? { tls } : {}),
    async fetch(req) {
      if (req.method === 'POST') {
        got.push({
          method: req.method,
          path: new URL(req.url).pathname,
          contentType: req.headers.get('content-type'),
          body: (await req.json()) as Got['body'],
        })
      }
      return Response.json({ code: status, status: 'x', results: {} }, { status })
    },
  })
  servers.push(server)
  return server
}

function pool(): AgentConnections {
  return new AgentConnections({
    cert: ca.tls.clientCert,
    key: ca.tls.clientKey,
    ca: ca.tls.ca,
    timeoutMs: 5_000,
  })
}

function notifier(agents: AgentConnections, targets: NotifyTarget[]): RevocationNotifier {
  return new RevocationNotifier({
    channels: ['agent'],
    webhookUrl: '',
    maxRetries: 1,
    retryInterval: 1,
    exponentialBackoff: false,
    agents,
    log: getLogger('test'),
    targets: async () => targets,
  })
}

const peer = (s: Server<undefined>, agentId: string, mtlsCert: string | null = null) => ({
  agentId,
  ip: '127.0.0.1',
  port: s.port as number,
  mtlsCert,
  version: '2.2',
})

describe('RevocationNotifier: the agent channel', () => {
  test('POSTs the signed notice as JSON to every other agent; failures are counted', async () => {
    const got: Got[] = []
    const ok = agent(got)
    const refusing = agent([], 500)
    const agents = pool()
    const n = notifier(agents, [
      peer(ok, 'peer-1'),
      peer(ok, subject.agentId), // the subject is never told about itself
      peer(refusing, 'peer-2'),
      { ...peer(ok, 'peer-3'), port: 1 }, // nothing listens there
    ])
    n.notify(subject, 'revocation', event)
    await n.drain(5_000)
    expect(n.counts).toEqual({ agent_ok: 1, agent_failed: 2, webhook_ok: 0, webhook_failed: 0 })
    expect(got).toHaveLength(1)
    const [g] = got as [Got]
    expect(g.method).toBe('POST')
    expect(g.path).toBe('/v2.2/notifications/revocation')
    expect(g.contentType).toBe('application/json')
    expect(Object.keys(g.body)).toEqual(['msg', 'signature'])
    const msg = JSON.parse(g.body.msg) as Record<string, unknown>
    expect(msg).toMatchObject({
      type: 'revocation',
      agent_id: 'bad-agent',
      event_id: event.event_id,
    })
    // upstream's message text: Python's json.dumps separators
    expect(g.body.msg).toStartWith('{"type": "revocation", "ip": "10.0.0.9"')
    const signed = verify(
      'sha256',
      Buffer.from(g.body.msg, 'utf8'),
      {
        key: publicKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_AUTO,
      },
      Buffer.from(g.body.signature, 'base64'),
    )
    expect(signed).toBe(true)
    agents.close()
  })

  test("an mTLS agent is notified over the pool's kept-alive connection its quotes use", async () => {
    const got: Got[] = []
    const s = agent(got, 200, agentCert)
    const agents = pool()
    const target = {
      ip: '127.0.0.1',
      port: s.port as number,
      https: true,
      pinnedCert: agentCert.certPem,
    }
    await agents.request(target, { path: '/v2.2/quotes/integrity' })
    const n = notifier(agents, [peer(s, 'peer-1', agentCert.certPem)])
    n.notify(subject, 'comm_error', undefined)
    await n.drain(5_000)
    expect(n.counts.agent_ok).toBe(1)
    expect(got).toHaveLength(1)
    expect(JSON.parse((got[0] as Got).body.msg)).toMatchObject({ type: 'comm_error' })
    expect(agents.opened).toBe(1)
    agents.close()
  })

  test('an mTLS agent whose certificate is not the registered one is not told', async () => {
    const got: Got[] = []
    const s = agent(got, 200, agentCert)
    const agents = pool()
    const other = await createAgentCert('someone-else')
    const n = notifier(agents, [peer(s, 'peer-1', other.certPem)])
    n.notify(subject, 'revocation', event)
    await n.drain(5_000)
    expect(n.counts.agent_failed).toBe(1)
    expect(got).toHaveLength(0)
    agents.close()
  })
})

describe('RevocationNotifier: the webhook and webhook_ear', () => {
  /** A notifier on the webhook channel whose fetch records the bodies it posts. */
  function webhook(
    bodies: Record<string, unknown>[],
    webhookEar?: (id: string) => Promise<string | undefined>,
  ) {
    const fetch = (async (_url: string, init: RequestInit) => {
      bodies.push(JSON.parse(init.body as string))
      return new Response('ok')
    }) as unknown as typeof globalThis.fetch
    return new RevocationNotifier({
      channels: ['webhook'],
      webhookUrl: 'http://127.0.0.1:9/hook',
      maxRetries: 1,
      retryInterval: 1,
      exponentialBackoff: false,
      agents: pool(),
      log: getLogger('test'),
      targets: async () => [],
      fetch,
      webhookEar,
    })
  }

  test("without webhook_ear the body is upstream's {msg, signature}", async () => {
    const bodies: Record<string, unknown>[] = []
    const n = webhook(bodies)
    n.notify(subject, 'revocation', event)
    await n.drain(5_000)
    expect(bodies).toHaveLength(1)
    expect(Object.keys(bodies[0]!).sort()).toEqual(['msg', 'signature'])
  })

  test("with webhook_ear the agent's EAR rides along; a failing signer costs only the EAR", async () => {
    const bodies: Record<string, unknown>[] = []
    const asked: string[] = []
    const n = webhook(bodies, async (id) => {
      asked.push(id)
      return 'header.claims.signature'
    })
    n.notify(subject, 'revocation', event)
    await n.drain(5_000)
    expect(asked).toEqual(['bad-agent'])
    expect(bodies[0]).toMatchObject({ ear: 'header.claims.signature' })
    expect(typeof bodies[0]!.msg).toBe('string')

    const failing: Record<string, unknown>[] = []
    const f = webhook(failing, async () => {
      throw new Error('no key')
    })
    f.notify(subject, 'revocation', event)
    await f.drain(5_000)
    expect(failing).toHaveLength(1)
    expect('ear' in failing[0]!).toBe(false)
  })
})
