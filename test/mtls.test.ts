/**
 * Real TLS listeners on 127.0.0.1 and the shared client: client certificates are optional, as
 * upstream's `CERT_OPTIONAL` (a verified one is reported to the app, one from another CA is
 * refused before any answer, none is let in as anonymous), TLS < 1.2
 * is refused, agent certificates are pinned without a host-name check, connections are kept alive.
 * The PKI is made by the openssl CLI, independent of our CA code.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { getLogger, setLogSink } from '../src/log/logger.ts'
import { MtlsClient } from '../src/http/mtls-client.ts'
import { PeerUnreachable } from '../src/http/peer-errors.ts'
import { formatHostPort } from '../src/http/format-host-port.ts'
import { type RunningServer, startServer } from '../src/http/serve.ts'
import { hasOpenssl, makeTestPki, type TestPki } from './support/openssl-pki.ts'

setLogSink(() => {}, false)
if (!hasOpenssl) console.log('skipping TLS tests: the openssl CLI is not installed')

describe.skipIf(!hasOpenssl)('TLS listeners and client', () => {
  let pki: TestPki
  let server: RunningServer
  let agent: RunningServer
  const remotePorts = new Set<number>()

  beforeAll(() => {
    pki = makeTestPki()
    server = startServer({
      name: 'mtls',
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req, env) =>
        Response.json({
          code: 200,
          status: 'Success',
          results: { path: new URL(req.url).pathname, clientCert: env?.clientCert },
        }),
      tls: { key: pki.serverKey, cert: pki.serverCert, ca: [pki.caCert], requestCert: true },
      log: getLogger('test'),
    })
    const s = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      tls: {
        key: pki.agentKey,
        cert: pki.agentCert,
        ca: [pki.caCert],
        requestCert: true,
        rejectUnauthorized: true,
      },
      fetch(req, srv) {
        remotePorts.add(srv.requestIP(req)?.port ?? -1)
        return Response.json({ code: 200, status: 'Success', results: { agent: true } })
      },
    })
    agent = {
      name: 'agent',
      url: `https://127.0.0.1:${s.port}`,
      port: s.port ?? 0,
      state: 'serving',
      stop: async () => void s.stop(true),
    }
  })
  afterAll(async () => {
    await server?.stop(100)
    await agent?.stop(100)
  })

  const client = () =>
    new MtlsClient({ cert: pki.clientCert, key: pki.clientKey, ca: [pki.caCert], timeoutMs: 5000 })

  test('a client certificate from the trusted CA is accepted', async () => {
    const res = await client().request(`${server.url}/version`)
    expect(res.status).toBe(200)
    expect(res.results).toEqual({ path: '/version', clientCert: 'verified' })
  })

  test('no client certificate: let in, and the app is told so', async () => {
    const c = new MtlsClient({ ca: [pki.caCert], timeoutMs: 5000 })
    const res = await c.request(`${server.url}/version`)
    expect(res.results).toEqual({ path: '/version', clientCert: 'none' })
  })

  test('a client certificate from another CA: refused before any answer', async () => {
    const c = new MtlsClient({
      cert: pki.rogueClientCert,
      key: pki.rogueClientKey,
      ca: [pki.caCert],
      timeoutMs: 5000,
    })
    const err = await c.request(`${server.url}/version`).catch((e) => e)
    expect(err).toBeInstanceOf(PeerUnreachable)
    expect(err.code).toBe('ERR_PEER_UNREACHABLE')
  })

  test('an untrusted server certificate is refused by the client', async () => {
    const c = new MtlsClient({
      cert: pki.clientCert,
      key: pki.clientKey,
      ca: [pki.rogueCaCert],
      timeoutMs: 5000,
    })
    expect(c.request(`${server.url}/version`)).rejects.toBeInstanceOf(PeerUnreachable)
  })

  test('TLS 1.1 is refused, TLS 1.2 and 1.3 are accepted', async () => {
    const hostPort = server.url.replace('https://', '')
    const handshake = async (flag: string) => {
      const p = Bun.spawn(
        [
          'openssl',
          's_client',
          '-connect',
          hostPort,
          flag,
          '-cert',
          `${pki.dir}/client.crt`,
          '-key',
          `${pki.dir}/client.key`,
          '-CAfile',
          `${pki.dir}/ca.crt`,
        ],
        { stdin: new TextEncoder().encode('Q\n'), stdout: 'pipe', stderr: 'pipe' },
      )
      const out = await new Response(p.stdout).text()
      await p.exited
      return /New, (TLSv[\d.]+|\(NONE\))/.exec(out)?.[1]
    }
    expect(await handshake('-tls1_1')).toBe('(NONE)')
    expect(await handshake('-tls1_2')).toBe('TLSv1.2')
    expect(await handshake('-tls1_3')).toBe('TLSv1.3')
  })

  test('an agent certificate is pinned without a host-name check; a wrong pin fails', async () => {
    const c = client()
    const ok = await c.request(`${agent.url}/v2.2/keys/pubkey`, { pinnedCert: pki.agentCert })
    expect(ok.results).toEqual({ agent: true })
    // Without the pin, the agent's self-signed certificate is not trusted.
    expect(c.request(`${agent.url}/version`)).rejects.toBeInstanceOf(PeerUnreachable)
    expect(
      c.request(`${agent.url}/version`, { pinnedCert: pki.otherAgentCert }),
    ).rejects.toBeInstanceOf(PeerUnreachable)
  })

  test('connections are kept alive across requests', async () => {
    remotePorts.clear()
    const c = client()
    for (let i = 0; i < 10; i++)
      await c.request(`${agent.url}/version`, { pinnedCert: pki.agentCert })
    expect(remotePorts.size).toBe(1)
  })

  test('an unreachable peer is a typed error with a hint', async () => {
    const err = await client()
      .request('https://127.0.0.1:9/version', { timeoutMs: 2000 })
      .catch((e) => e)
    expect(err).toBeInstanceOf(PeerUnreachable)
    expect(err.message).toContain('127.0.0.1:9')
  })

  test('IPv6 literals are bracketed in URLs', () => {
    expect(formatHostPort('::1', 8881)).toBe('[::1]:8881')
    expect(formatHostPort('10.0.0.1', 8881)).toBe('10.0.0.1:8881')
  })
})
