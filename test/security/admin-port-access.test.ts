/**
 * The access model of upstream Keylime 7.14 on the admin TLS ports (verifier 8881, registrar 8891),
 * on real listeners on 127.0.0.1: client certificates are optional at TLS (`CERT_OPTIONAL`), and
 * each route's action decides. For EVERY route of each role's access table:
 *
 * - no certificate: a public action gets through; any other gets upstream's 403 body;
 * - the admin certificate (cv_ca): every action gets through, except the agents' own
 *   (`submit_attestation`, which upstream keeps from admins);
 * - a certificate from another CA, a revoked one (in `cacrl.pem`) and an expired one: refused
 *   before any answer,
 *   public actions included (Python refuses an invalid presented certificate at the handshake).
 *
 * The app behind the middleware answers 200 to whatever gets through, so the status is the
 * access decision alone; the roles' own routes are covered in cve-2026-1709-registrar-admin-auth
 * and verifier-api.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Hono } from 'hono'
import { resolveCaSettings } from '../../src/ca/ca-settings.ts'
import { CertAuthority } from '../../src/ca/cert-authority.ts'
import { actionKind, authorizeAction } from '../../src/http/access/action.ts'
import {
  type AccessRule,
  enforceAccess,
  identifyByClientCert,
} from '../../src/http/access/enforce-access.ts'
import { type RunningServer, startServer } from '../../src/http/serve.ts'
import { getLogger, setLogSink } from '../../src/log/logger.ts'
import { REGISTRAR_ACCESS } from '../../src/registrar/access-table.ts'
import { VERIFIER_ACCESS } from '../../src/verifier/api/access-table.ts'

setLogSink(() => {}, false)

const root = mkdtempSync(join(tmpdir(), 'kl-access-'))
const read = (dir: string, file: string) => readFileSync(join(root, dir, file), 'utf8')
type Who = 'none' | 'admin' | 'rogue' | 'revoked' | 'expired'
let tlsFor: (who: Who) => Record<string, unknown>
const servers: RunningServer[] = []

beforeAll(async () => {
  const settings = resolveCaSettings({ cert_bits: 2048 } as never)
  const ca = await CertAuthority.init(join(root, 'ca'), settings, 'pw')
  await ca.createCert('server', { kind: 'server', sanIps: ['127.0.0.1'], sanDns: [] })
  await ca.createCert('admin')
  await ca.createCert('revoked')
  await ca.revoke({ name: 'revoked' })
  // Issued 11 years ago with the default 10-year lifetime.
  await ca.createCert('expired', { now: new Date(Date.now() - 11 * 365 * 86_400_000) })
  const rogue = await CertAuthority.init(join(root, 'rogue'), settings, 'pw')
  await rogue.createCert('rogue')
  const caPem = read('ca', 'cacert.crt')
  const cert = (dir: string, name: string) => ({
    cert: read(dir, `${name}-cert.crt`),
    key: read(dir, `${name}-private.pem`),
  })
  tlsFor = (who) => ({
    ca: [caPem],
    checkServerIdentity: () => undefined,
    ...(who === 'admin' ? cert('ca', 'admin') : {}),
    ...(who === 'revoked' ? cert('ca', 'revoked') : {}),
    ...(who === 'rogue' ? cert('rogue', 'rogue') : {}),
    ...(who === 'expired' ? cert('ca', 'expired') : {}),
  })
})

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop(0)))
  rmSync(root, { recursive: true, force: true })
})

/** A real listener with `rules` enforced in front of an app answering 200 (after `delayMs`). */
function listen(rules: readonly AccessRule[], delayMs = 0): RunningServer {
  const app = new Hono({ strict: false })
  app.use('*', enforceAccess(rules, identifyByClientCert))
  app.all('*', async (c) => {
    if (delayMs > 0) await Bun.sleep(delayMs)
    return c.text('through')
  })
  const server = startServer({
    name: 'admin',
    hostname: '127.0.0.1',
    port: 0,
    fetch: app.fetch,
    tls: {
      key: read('ca', 'server-private.pem'),
      cert: read('ca', 'server-cert.crt'),
      ca: [read('ca', 'cacert.crt')],
      requestCert: true,
      crl: { pems: [read('ca', 'cacrl.pem')], subscribe: () => () => {} },
    },
    log: getLogger('test'),
  })
  servers.push(server)
  return server
}

/** Status of `method path` as `who`, or 0 when the connection is refused. */
async function status(url: string, method: string, who: Who): Promise<[number, unknown]> {
  const tls = tlsFor(who) // outside the try: a missing certificate must fail the test
  try {
    const res = await fetch(url, { method, tls, keepalive: false } as RequestInit)
    const text = await res.text()
    return [res.status, res.status === 403 ? JSON.parse(text) : text]
  } catch {
    return [0, null]
  }
}

/** A concrete path for a rule's path: `/v2` → `/v2.6`, parameters filled in. */
const concrete = (path: string) =>
  path
    .replace(/^\/v2/, '/v2.6')
    .replace(/^\/v3/, '/v3.0')
    .replace(/:[a-z_]+/g, 'a1')

for (const [role, rules] of [
  ['verifier', VERIFIER_ACCESS],
  ['registrar', REGISTRAR_ACCESS],
] as const) {
  describe(`${role} admin port: every route × {no cert, admin, rogue, revoked, expired}`, () => {
    let server: RunningServer
    beforeAll(() => {
      server = listen(rules)
    })
    for (const [method, path, action] of rules) {
      test(`${method} ${path} (${action}, ${actionKind(action)})`, async () => {
        const url = `${server.url}${concrete(path)}`
        const [none, noneBody] = await status(url, method, 'none')
        if (actionKind(action) === 'public') {
          expect(none).toBe(200)
        } else {
          expect(none).toBe(403)
          expect(noneBody).toEqual({
            errors: [
              {
                status: '403',
                title: 'Forbidden',
                detail: authorizeAction(action, { type: 'anonymous' }, 'a1'),
              },
            ],
          })
        }
        const [admin] = await status(url, method, 'admin')
        expect(admin).toBe(actionKind(action) === 'agent' ? 403 : 200)
        expect((await status(url, method, 'rogue'))[0]).toBe(0)
        expect((await status(url, method, 'revoked'))[0]).toBe(0)
        expect((await status(url, method, 'expired'))[0]).toBe(0)
      })
    }
  })
}

describe('idle connections on the optional-certificate listener', () => {
  /** Seconds until the server closes a connection that `send` left idle, or -1 after `maxS`. */
  async function closedAfter(port: number, send: 'nothing' | 'handshake', maxS: number) {
    const t0 = performance.now()
    return await new Promise<number>((resolve) => {
      const done = () => resolve((performance.now() - t0) / 1000)
      const timer = setTimeout(() => resolve(-1), maxS * 1000)
      const handlers = {
        data() {},
        close() {
          clearTimeout(timer)
          done()
        },
        error() {},
        connectError() {
          clearTimeout(timer)
          done()
        },
      }
      if (send === 'nothing') Bun.connect({ hostname: '127.0.0.1', port, socket: handlers })
      else
        Bun.connect({
          hostname: '127.0.0.1',
          port,
          tls: { rejectUnauthorized: false },
          socket: handlers,
        })
    })
  }

  test('a client that never finishes a handshake or a request is dropped, not held', async () => {
    const server = listen(VERIFIER_ACCESS)
    const [raw, tls] = await Promise.all([
      closedAfter(server.port, 'nothing', 30),
      closedAfter(server.port, 'handshake', 30),
    ])
    expect(raw).toBeGreaterThan(0)
    expect(tls).toBeGreaterThan(0)
  }, 40_000)

  test('a request answered after longer than the idle limit is not cut off', async () => {
    const server = listen(VERIFIER_ACCESS, 11_000)
    expect(await status(`${server.url}/version`, 'GET', 'none')).toEqual([200, 'through'])
  }, 30_000)
})
