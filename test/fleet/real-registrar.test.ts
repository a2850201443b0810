/**
 * The fleet against the real keylime-ts registrar (`src/registrar/start-registrar.ts`) on
 * loopback, with an in-memory database: 20 agents register and activate over the wire, and the
 * registrar's admin API (mTLS) then lists and shows them with the identity they sent.
 *
 * @module
 */

import { afterAll, beforeAll, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolveCaSettings } from '../../src/ca/ca-settings.ts'
import { ensureCvCa } from '../../src/ca/ensure-cv-ca.ts'
import { loadRegistrarConfig } from '../../src/config/index.ts'
import { type KeylimeDatabase, openDatabase } from '../../src/db/index.ts'
import type { RoleHandle } from '../../src/http/role.ts'
import { getLogger } from '../../src/log/logger.ts'
import { startRegistrar } from '../../src/registrar/start-registrar.ts'
import { type Fleet, startFleet } from '../support/fleet/fleet.ts'
import { type CaDirMaterial, loadCaDir } from '../support/fleet/load-ca-dir.ts'

let dir: string
let ca: CaDirMaterial
let kdb: KeylimeDatabase
let registrar: RoleHandle
let fleet: Fleet

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fleet-reg-'))
  await ensureCvCa({ keylimeDir: dir, settings: resolveCaSettings(), hostname: 'localhost' })
  ca = await loadCaDir(join(dir, 'cv_ca'))
  kdb = await openDatabase({ url: 'memory://', keylimeDir: dir })
  const base = loadRegistrarConfig({
    env: {},
    etcDir: join(dir, 'etc'),
    usrEtcDir: join(dir, 'usr'),
    warn: () => {},
  })
  const config = {
    ...base,
    registrar: { ...base.registrar, ip: '127.0.0.1', port: 0, tls_port: 0 },
  }
  registrar = await startRegistrar(
    {
      config,
      keylimeDir: dir,
      database: kdb,
      tls: {
        serverKey: readFileSync(join(dir, 'cv_ca', 'server-private.pem'), 'utf8'),
        serverCert: readFileSync(join(dir, 'cv_ca', 'server-cert.crt'), 'utf8'),
        ca: [ca.caCertPem],
        verifyPeer: true,
      },
      log: getLogger('registrar'),
    },
    { certStore: { get: () => new Error('no tpm_cert_store in this test') } },
  )
  fleet = await startFleet({
    count: 20,
    caCertPem: ca.caCertPem,
    sharedKeys: true,
    seed: 'real-registrar',
  })
}, 60_000)

afterAll(async () => {
  await fleet?.stop()
  await registrar?.stop(0)
  await kdb?.close()
  rmSync(dir, { recursive: true, force: true })
})

test('20 simulated agents register and activate with the real registrar', async () => {
  const [http, mtls] = registrar.servers
  const r = await fleet.registerAll(http!.url, 8)
  expect(r).toMatchObject({ ok: 20, failed: 0 })
  const tls = {
    ca: [ca.caCertPem],
    cert: ca.client.cert,
    key: ca.client.key,
    checkServerIdentity: () => undefined,
  }
  const v = fleet.agents[0]!.registrarApiVersion
  const list = await fetch(`${mtls!.url}/v${v}/agents/`, { tls } as RequestInit)
  const uuids = ((await list.json()) as { results: { uuids: string[] } }).results.uuids
  expect([...uuids].sort()).toEqual(fleet.agents.map((a) => a.uuid).sort())
  const a = fleet.agents[7]!
  const show = await fetch(`${mtls!.url}/v${v}/agents/${a.uuid}`, { tls } as RequestInit)
  const shown = ((await show.json()) as { results: Record<string, unknown> }).results
  expect(shown.aik_tpm).toBe(Buffer.from(a.tpm.akTpm2b).toString('base64'))
  expect(shown.ek_tpm).toBe(Buffer.from(a.tpm.ekTpm2b).toString('base64'))
  expect(String(shown.mtls_cert).trim()).toBe(a.mtlsCertPem.trim())
  expect(shown).toMatchObject({ ip: '127.0.0.1', port: a.contactPort })
}, 30_000)
