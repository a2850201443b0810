/**
 * A registrar started in-process for end-to-end and security tests: `startRegistrar` with a fresh
 * cv_ca (server certificate, admin client certificate), both listeners on 127.0.0.1 port 0, on a
 * given database; plus small clients for the plain port and the admin (mTLS) port. And, for
 * `app.request()` tests, the agent-facing app alone.
 *
 * @module
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  DEFAULT_CA_SETTINGS,
  ensureCvCa,
  loadTlsMaterial,
  resolveTlsFiles,
} from '../../src/ca/index.ts'
import { loadRegistrarConfig, type RegistrarConfig } from '../../src/config/index.ts'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import { addVersionRoutes } from '../../src/http/add-version-routes.ts'
import { createApp, type KeylimeApp } from '../../src/http/create-app.ts'
import type { Envelope } from '../../src/http/envelope.ts'
import type { RoleHandle } from '../../src/http/role.ts'
import { getLogger } from '../../src/log/logger.ts'
import { addRegistrarRoutes } from '../../src/registrar/routes.ts'
import { RegistrarService } from '../../src/registrar/service.ts'
import { startRegistrar } from '../../src/registrar/start-registrar.ts'

/** PEM material of the cv_ca's admin client. */
export interface AdminClient {
  cert: string
  key: string
  ca: string
}

/** An answer: HTTP status and the envelope. */
export interface Answer {
  status: number
  json: Envelope
}

/** A running test registrar. */
export interface TestRegistrar {
  role: RoleHandle
  /** `http://127.0.0.1:<port>` (agents). */
  httpUrl: string
  /** `https://127.0.0.1:<port>` (admins, mTLS). */
  httpsUrl: string
  /** The cv_ca admin client certificate and key, and the CA. */
  client: AdminClient
  /** A request on the plain port. */
  send(method: string, path: string, body?: unknown): Promise<Answer>
  /** A request on the mTLS port with the admin client certificate. */
  admin(method: string, path: string): Promise<Answer>
  /** Stops the listeners and removes the directory (the database is the caller's). */
  stop(): Promise<void>
}

async function answer(res: Response): Promise<Answer> {
  return { status: res.status, json: (await res.json()) as Envelope }
}

/**
 * Starts a registrar on `database`, trusting EK/IAK/IDevID certificates from `tpmCertStore`
 * (default: an empty directory).
 */
export async function startTestRegistrar(options: {
  database: KeylimeDatabase
  tpmCertStore?: string
  /** `[registrar]` options over the defaults. */
  registrar?: Partial<RegistrarConfig['registrar']>
  /** A `KEYLIME_DIR` whose cv_ca to share (e.g. with a test verifier); default a fresh one. */
  keylimeDir?: string
}): Promise<TestRegistrar> {
  const work = mkdtempSync(join(tmpdir(), 'kl-test-registrar-'))
  const keylimeDir = options.keylimeDir ?? join(work, 'kl')
  const etc = join(work, 'etc')
  for (const d of [keylimeDir, etc, join(work, 'store')]) mkdirSync(d, { recursive: true })
  await ensureCvCa({ keylimeDir, settings: { ...DEFAULT_CA_SETTINGS }, ip: '127.0.0.1' })
  const base = loadRegistrarConfig({ etcDir: etc, usrEtcDir: etc, env: {}, warn: () => {} })
  const config = {
    ...base,
    registrar: { ...base.registrar, ip: '127.0.0.1', port: 0, tls_port: 0, ...options.registrar },
  }
  const r = config.registrar
  const tls = await loadTlsMaterial(
    resolveTlsFiles({
      keylimeDir,
      tlsDir: r.tls_dir,
      component: 'registrar',
      serverKey: r.server_key,
      serverKeyPassword: r.server_key_password,
      serverCert: r.server_cert,
      trustedCa: r.trusted_client_ca,
    }),
    { server: true, client: false },
  )
  const role = await startRegistrar(
    { config, keylimeDir, database: options.database, tls, log: getLogger('registrar') },
    { tpmCertStore: options.tpmCertStore ?? join(work, 'store') },
  )
  const ca = join(keylimeDir, 'cv_ca')
  const client = {
    cert: readFileSync(join(ca, 'client-cert.crt'), 'utf8'),
    key: readFileSync(join(ca, 'client-private.pem'), 'utf8'),
    ca: readFileSync(join(ca, 'cacert.crt'), 'utf8'),
  }
  const httpUrl = role.servers[0]!.url
  const httpsUrl = role.servers[1]!.url
  return {
    role,
    httpUrl,
    httpsUrl,
    client,
    send: async (method, path, body) =>
      answer(
        await fetch(`${httpUrl}${path}`, {
          method,
          headers: { 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        }),
      ),
    admin: async (method, path) =>
      answer(
        await fetch(`${httpsUrl}${path}`, {
          method,
          tls: { ...client, checkServerIdentity: () => undefined },
        }),
      ),
    async stop() {
      await role.stop(1000)
      rmSync(work, { recursive: true, force: true })
    },
  }
}

/**
 * The registrar's agent-facing app (plain-port routes, 64 KiB bodies) on `database`, for
 * `app.request()` tests: no listener, no TLS.
 */
export function registrarTestApp(database: KeylimeDatabase): KeylimeApp {
  const log = getLogger('registrar')
  const app = createApp({ log, maxUploadSize: 64 * 1024 })
  addVersionRoutes(app)
  addRegistrarRoutes(
    app,
    new RegistrarService({ database, log, certStore: { get: () => new Error('no store') } }),
    'http',
  )
  return app
}
