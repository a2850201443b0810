/**
 * The verifier's kept-alive agent client against real listeners on loopback: mTLS with the
 * agent's pinned certificate (as upstream: the certificate is the only trust anchor, host names
 * are not checked), connection reuse, refusal of a wrong or expired certificate before any byte
 * is sent, large and chunked bodies, size limits, garbage, timeouts and agents that close idle
 * connections.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Server, Socket, TCPSocketListener } from 'bun'
import { type AgentCert, createAgentCert } from '../../../test/support/fleet/agent-cert.ts'
import { ByteBudget } from '../byte-budget.ts'
import {
  AnswerBufferFull,
  PeerAnswerTooLarge,
  PeerBadResponse,
  PeerUnreachable,
} from '../peer-errors.ts'
import { AgentConnections, type AgentTarget, sessionFileFor } from './agent-connections.ts'
import { createTestCa, type TestCa } from '../../../test/support/verifier-harness.ts'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hasOpenssl } from '../../../test/support/openssl-pki.ts'

let ca: TestCa
let agentCert: AgentCert
let otherCert: AgentCert
let expiredCert: AgentCert
const servers: { stop: (force?: boolean) => unknown }[] = []
/** Requests each TLS listener received, by port. */
const hits = new Map<number, number>()

beforeAll(async () => {
  ca = await createTestCa()
  agentCert = await createAgentCert('agent-1')
  otherCert = await createAgentCert('agent-2')
  expiredCert = await createAgentCert('agent-old', [], new Date(Date.now() - 2 * 365 * 86_400_000))
})

afterAll(() => {
  for (const s of servers) s.stop(true)
})

/** An mTLS agent listener that requires a client certificate from cv_ca. */
function agentServer(
  cert: AgentCert,
  answer: (req: Request) => Response | Promise<Response>,
  hostname = '127.0.0.1',
): Server<undefined> {
  const server: Server<undefined> = Bun.serve({
    hostname,
    port: 0,
    tls: {
      cert: cert.certPem,
      key: cert.keyPem,
      ca: ca.tls.ca,
      requestCert: true,
      rejectUnauthorized: true,
    },
    fetch(req) {
      hits.set(server.port as number, (hits.get(server.port as number) ?? 0) + 1)
      return answer(req)
    },
  })
  servers.push(server)
  return server
}

/** A plain TCP listener that answers each request with `reply(n)` (n counts requests). */
function rawServer(reply: (n: number, s: Socket<undefined>) => void): TCPSocketListener<undefined> {
  let n = 0
  const server = Bun.listen<undefined>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data(s) {
        reply(n++, s)
      },
    },
  })
  servers.push(server)
  return server
}

/** The target of an agent server with `pinned` (default `agentCert`) as its registered cert. */
function pinnedTarget(s: Server<undefined>, pinned: AgentCert = agentCert): AgentTarget {
  return { ip: '127.0.0.1', port: s.port as number, https: true, pinnedCert: pinned.certPem }
}

function pool(o: Partial<ConstructorParameters<typeof AgentConnections>[0]> = {}) {
  return new AgentConnections({
    cert: ca.tls.clientCert,
    key: ca.tls.clientKey,
    ca: ca.tls.ca,
    timeoutMs: 5_000,
    ...o,
  })
}

const json = (v: unknown) =>
  new Response(JSON.stringify(v), { headers: { 'content-type': 'application/json' } })

describe('AgentConnections over mTLS', () => {
  test('pinned certificate: answers parsed, one connection reused, client certificate sent', async () => {
    const s = agentServer(agentCert, (req) =>
      json({ code: 200, status: 'Success', results: { path: new URL(req.url).pathname } }),
    )
    const p = pool()
    const t = pinnedTarget(s)
    for (const path of ['/v2.2/quotes/integrity?nonce=1', '/version', '/v2.2/keys/pubkey']) {
      const r = await p.request(t, { path })
      expect(r.status).toBe(200)
      expect(r.results).toEqual({ path: path.split('?')[0] })
    }
    expect(p.opened).toBe(1)
    expect(p.open).toBe(1)
    expect(p.isWarm(t)).toBe(true)
    p.close()
  })

  test('host name is not checked (upstream check_hostname = False)', async () => {
    // the certificate names 127.0.0.1 and ::1 only
    const s = agentServer(agentCert, () => json({ results: { ok: true } }), '127.0.0.2')
    const r = await pool().request(
      { ip: '127.0.0.2', port: s.port as number, https: true, pinnedCert: agentCert.certPem },
      { path: '/version' },
    )
    expect(r.results).toEqual({ ok: true })
  })

  test('a different or expired certificate is refused before any request is sent', async () => {
    for (const [served, pinned] of [
      [otherCert, agentCert],
      [expiredCert, expiredCert],
    ] as const) {
      const s = agentServer(served, () => json({ results: {} }))
      const p = pool()
      const err = await p
        .request(pinnedTarget(s, pinned), { path: '/version' })
        .catch((e: unknown) => e)
      expect(err).toBeInstanceOf(PeerUnreachable)
      expect(String((err as Error).message)).toContain('not trusted')
      expect(hits.get(s.port as number) ?? 0).toBe(0)
      expect(p.open).toBe(0)
    }
  })

  test('a garbled pinned certificate is a PeerUnreachable, and leaves no connection counted', async () => {
    const s = agentServer(agentCert, () => json({ results: {} }))
    const p = pool({ maxConnecting: 1 })
    const t = { ...pinnedTarget(s), pinnedCert: 'not a certificate' }
    for (let i = 0; i < 2; i++) {
      // the second would wait forever if the first had kept its set-up slot
      await expect(p.request(t, { path: '/' })).rejects.toBeInstanceOf(PeerUnreachable)
    }
    expect(p.open).toBe(0)
    expect(hits.get(s.port as number)).toBeUndefined()
  })

  test('without a pinned certificate the configured CAs decide; verifyPeer false accepts any', async () => {
    const s = agentServer(agentCert, () => json({ results: { ok: 1 } }))
    const t: AgentTarget = { ip: '127.0.0.1', port: s.port as number, https: true }
    await expect(pool().request(t, { path: '/version' })).rejects.toBeInstanceOf(PeerUnreachable)
    const trusting = pool({ ca: [agentCert.certPem] })
    expect((await trusting.request(t, { path: '/version' })).results).toEqual({ ok: 1 })
    const open = pool({ ca: [], verifyPeer: false })
    expect((await open.request(t, { path: '/version' })).results).toEqual({ ok: 1 })
  })

  test('a large body arriving in many chunks is reassembled intact', async () => {
    const list = 'x'.repeat(3 * 1024 * 1024)
    const s = agentServer(agentCert, () => json({ results: { ima_measurement_list: list } }))
    const r = await pool().request(pinnedTarget(s), { path: '/v2.2/quotes/integrity' })
    expect((r.results as { ima_measurement_list: string }).ima_measurement_list).toBe(list)
  })

  test('a body over maxResponseBytes is a PeerAnswerTooLarge (a PeerBadResponse)', async () => {
    const s = agentServer(agentCert, () => json({ results: 'y'.repeat(100_000) }))
    const err = await pool({ maxResponseBytes: 10_000 })
      .request(pinnedTarget(s), { path: '/x' })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerAnswerTooLarge)
    expect(err).toBeInstanceOf(PeerBadResponse)
    expect((err as PeerAnswerTooLarge).code).toBe('ERR_PEER_ANSWER_TOO_LARGE')
  })

  test.skipIf(!hasOpenssl)('an agent that speaks only TLS 1.1 is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kl-tls11-'))
    writeFileSync(join(dir, 'c.pem'), agentCert.certPem)
    writeFileSync(join(dir, 'k.pem'), agentCert.keyPem)
    const port = 20_000 + Math.floor(Math.random() * 20_000)
    const proc = Bun.spawn(
      [
        'openssl',
        's_server',
        '-accept',
        `127.0.0.1:${port}`,
        '-cert',
        'c.pem',
        '-key',
        'k.pem',
      ].concat(['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0', '-www', '-quiet']),
      { cwd: dir, stdout: 'ignore', stderr: 'pipe' },
    )
    servers.push({ stop: () => proc.kill() })
    for (let i = 0; i < 50; i++) {
      const up = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } }).then(
        (s) => {
          s.end()
          return true
        },
        () => false,
      )
      if (up) break
      await Bun.sleep(50)
    }
    const err = await pool()
      .request({ ip: '127.0.0.1', port, https: true, pinnedCert: agentCert.certPem }, { path: '/' })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerUnreachable)
  })

  test('TLS sessions: resumed on reconnect, kept across a restart in a 0600 file, never for another certificate', async () => {
    const s = agentServer(agentCert, () => json({ results: { ok: true } }))
    const t = pinnedTarget(s)
    const sessionFile = join(mkdtempSync(join(tmpdir(), 'kl-sess-')), 'sessions.json')
    const first = pool({ sessionFile })
    await first.request(t, { path: '/a' })
    expect(first.resumed).toBe(0)
    first.close() // saves
    expect(statSync(sessionFile).mode & 0o777).toBe(0o600)
    expect(readFileSync(sessionFile, 'utf8')).not.toContain('PRIVATE KEY')
    // a new process (pool) with the same file resumes instead of a full handshake
    const second = pool({ sessionFile })
    expect((await second.request(t, { path: '/b' })).results).toEqual({ ok: true })
    expect(second.opened).toBe(1)
    expect(second.resumed).toBe(1)
    second.close()
    // the same address with another pinned certificate: a new key, no session offered
    const other = agentServer(otherCert, () => json({ results: {} }))
    const third = pool({ sessionFile })
    const err = await third.request(pinnedTarget(other), { path: '/c' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerUnreachable)
    expect(third.resumed).toBe(0)
    // a garbled file means full handshakes, not a failure
    writeFileSync(sessionFile, '{not json')
    const fourth = pool({ sessionFile })
    expect((await fourth.request(t, { path: '/d' })).results).toEqual({ ok: true })
    expect(fourth.resumed).toBe(0)
    fourth.close()
  })

  test("a sibling process's saved sessions are resumed by the process that takes its agents over", async () => {
    const s = agentServer(agentCert, () => json({ results: { ok: true } }))
    const t = pinnedTarget(s)
    const dir = mkdtempSync(join(tmpdir(), 'kl-sess-'))
    const dead = pool({ sessionFile: sessionFileFor(dir, 'dead') })
    await dead.request(t, { path: '/a' })
    dead.close() // saves its file, as it did while it ran
    writeFileSync(join(dir, 'other-file.json'), '{"v":1,"sessions":[["x","AAAA",1]]}')
    const survivorFile = sessionFileFor(dir, 'survivor')
    const survivor = pool({ sessionFile: survivorFile })
    expect(survivor.importSiblingSessions()).toBe(1)
    expect(survivor.importSiblingSessions()).toBe(0) // unchanged files are not read again
    expect((await survivor.request(t, { path: '/b' })).results).toEqual({ ok: true })
    expect(survivor.resumed).toBe(1)
    survivor.close()
    // the survivor keeps the session in its own file from now on
    expect(readFileSync(survivorFile, 'utf8')).toContain(`${t.port}`)
  })

  test('a connection idle longer than idleMs is closed; a busy one is not', async () => {
    let hold: (() => void) | undefined
    const s = agentServer(agentCert, async (req) => {
      if (new URL(req.url).pathname === '/slow') await new Promise<void>((r) => (hold = r))
      return json({ results: {} })
    })
    const t = pinnedTarget(s)
    const p = pool({ idleMs: 300 })
    await p.request(t, { path: '/a' })
    expect(p.open).toBe(1)
    // a request that takes longer than idleMs keeps its connection
    const slow = p.request(t, { path: '/slow' })
    await Bun.sleep(600)
    expect(p.open).toBe(1)
    hold?.()
    await slow
    await Bun.sleep(800)
    expect(p.open).toBe(0)
    expect(p.opened).toBe(1)
    p.close()
  })

  test('POST sends a JSON body with its length', async () => {
    let got: unknown
    const s = agentServer(agentCert, async (req) => {
      got = { method: req.method, body: await req.json() }
      return json({ results: {} })
    })
    await pool().request(pinnedTarget(s), {
      method: 'POST',
      path: '/v2.2/keys/vkey',
      json: { encrypted_key: 'AAAA' },
    })
    expect(got).toEqual({ method: 'POST', body: { encrypted_key: 'AAAA' } })
  })
})

describe('AgentConnections over plain HTTP (enable_agent_mtls = False)', () => {
  const ok = (body: string, extra = '') =>
    `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`

  test('an agent that closes the connection after each answer: the next request reconnects', async () => {
    const s = rawServer((n, sock) => {
      sock.write(ok(JSON.stringify({ results: { n } })))
      sock.end()
    })
    const p = pool()
    const t: AgentTarget = { ip: '127.0.0.1', port: s.port, https: false }
    expect((await p.request(t, { path: '/a' })).results).toEqual({ n: 0 })
    await Bun.sleep(50)
    expect((await p.request(t, { path: '/b' })).results).toEqual({ n: 1 })
    expect(p.opened).toBe(2)
  })

  test('a kept connection the agent dropped unanswered is retried once on a fresh one', async () => {
    const s = rawServer((n, sock) => {
      if (n === 1)
        sock.end() // the second request, on the kept connection: closed, no answer
      else sock.write(ok(JSON.stringify({ results: { n } })))
    })
    const p = pool()
    const t: AgentTarget = { ip: '127.0.0.1', port: s.port, https: false }
    expect((await p.request(t, { path: '/a' })).results).toEqual({ n: 0 })
    expect((await p.request(t, { path: '/b' })).results).toEqual({ n: 2 })
    expect(p.opened).toBe(2)
    p.close()
  })

  test('chunked transfer encoding', async () => {
    const s = rawServer((_n, sock) => {
      const body = JSON.stringify({ results: { chunked: true } })
      const a = body.slice(0, 7)
      const b = body.slice(7)
      sock.write(
        `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${a.length.toString(16)}\r\n${a}\r\n` +
          `${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`,
      )
    })
    const r = await pool().request({ ip: '127.0.0.1', port: s.port, https: false }, { path: '/c' })
    expect(r.results).toEqual({ chunked: true })
  })

  /** Bytes that differ from offset to offset, so a misplaced or reused piece shows. */
  const varied = (n: number) => {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = 97 + ((i * 7 + (i >> 9)) % 26)
    return b.toString('latin1')
  }

  test('large answers in every framing arrive intact, written in odd pieces', async () => {
    const list = varied(3_000_001)
    const body = JSON.stringify({ results: { ima_measurement_list: list } })
    const framings = [
      `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${(body.match(/[\s\S]{1,16384}/g) ?? [])
        .map((c) => `${c.length.toString(16)}\r\n${c}\r\n`)
        .join('')}0\r\n\r\n`,
      `HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n${body}`,
    ]
    for (const wire of framings) {
      const s = rawServer((_n, sock) => {
        const bytes = Buffer.from(wire, 'latin1')
        let at = 0
        const pump = (): void => {
          while (at < bytes.length) {
            const n = sock.write(bytes.subarray(at, at + 1 + (at % 7919)))
            if (n <= 0) {
              setTimeout(pump, 1)
              return
            }
            at += n
          }
          if (wire.includes('Connection: close')) sock.end()
        }
        pump()
      })
      const r = await pool().request({ ip: '127.0.0.1', port: s.port, https: false }, { path: '/' })
      expect((r.results as { ima_measurement_list: string }).ima_measurement_list === list).toBe(
        true,
      )
    }
  })

  test('malformed framing is a PeerBadResponse naming the framing error', async () => {
    const s = rawServer((_n, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!')
    })
    const err = await pool()
      .request({ ip: '127.0.0.1', port: s.port, https: false }, { path: '/' })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerBadResponse)
    expect((err as PeerBadResponse).code).toBe('ERR_HTTP1_CONTENT_LENGTH')
  })

  test('the process budget: an answer that does not fit is AnswerBufferFull, and gives its bytes back', async () => {
    const big = JSON.stringify({ results: varied(400_000) })
    const s = rawServer((_n, sock) => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n${big}`)
    })
    const budget = new ByteBudget(200_000)
    const p = pool({ budget })
    const t: AgentTarget = { ip: '127.0.0.1', port: s.port, https: false }
    const err = await p.request(t, { path: '/' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AnswerBufferFull)
    expect(err).toBeInstanceOf(PeerUnreachable)
    expect(budget.used).toBe(0)
    const roomy = new ByteBudget(1_000_000)
    expect((await pool({ budget: roomy }).request(t, { path: '/' })).status).toBe(200)
    expect(roomy.used).toBe(0)
  })

  test('garbage, silence and refusal are typed errors', async () => {
    const garbage = rawServer((_n, sock) => {
      sock.write('SSH-2.0-OpenSSH\r\n\r\n')
    })
    await expect(
      pool().request({ ip: '127.0.0.1', port: garbage.port, https: false }, { path: '/' }),
    ).rejects.toBeInstanceOf(PeerBadResponse)
    const silent = rawServer(() => undefined)
    const err = await pool()
      .request({ ip: '127.0.0.1', port: silent.port, https: false }, { path: '/', timeoutMs: 200 })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerUnreachable)
    expect(String((err as Error).message)).toContain('timed out')
    // TCP accepted, TLS never answered: the set-up times out too
    const stalled = await pool()
      .request({ ip: '127.0.0.1', port: silent.port, https: true }, { path: '/', timeoutMs: 200 })
      .catch((e: unknown) => e)
    expect(stalled).toBeInstanceOf(PeerUnreachable)
    expect(String((stalled as Error).message)).toContain('timed out')
    const closed = rawServer(() => undefined)
    const port = closed.port
    closed.stop(true)
    await expect(
      pool().request({ ip: '127.0.0.1', port, https: false }, { path: '/' }),
    ).rejects.toBeInstanceOf(PeerUnreachable)
  })
})
