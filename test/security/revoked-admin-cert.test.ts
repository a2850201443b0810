/**
 * Finding 10 (issue 17): a client certificate revoked with `keylime_ca -c revoke` (listed in
 * `cacrl.der`) was still accepted on the verifier and registrar TLS ports, before and after a
 * restart. Asserted here, with curl (OpenSSL) as the client:
 *
 * - a listener with a `ClientCrlWatcher` refuses a revoked certificate at the handshake and
 *   accepts a valid one; a revocation made while it runs applies within a poll, without dropping
 *   a request in flight; a broken, foreign or deleted CRL is ignored (the revoked certificate
 *   stays refused, the listener keeps serving);
 * - the control plane as a process: `keylime_ca -c revoke` of an admin certificate makes both the
 *   verifier port and the registrar TLS port refuse it within seconds, and again after a restart,
 *   while another admin certificate keeps working.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolveCaSettings } from '../../src/ca/ca-settings.ts'
import { CertAuthority } from '../../src/ca/cert-authority.ts'
import { resolveClientCrlFiles } from '../../src/ca/resolve-tls-files.ts'
import { ClientCrlWatcher } from '../../src/ca/watch-client-crl.ts'
import { type RunningServer, startServer } from '../../src/http/serve.ts'
import { getLogger, setLogSink } from '../../src/log/logger.ts'
import {
  type ChildRun,
  controlPlaneEnv,
  MAIN_TS,
  spawnCollect,
} from '../support/control-plane-process.ts'
import { hasOpenssl } from '../support/openssl-pki.ts'
import { until } from '../support/until.ts'

const hasCurl = Bun.which('curl') !== null
const logged: string[] = []
setLogSink((line) => void logged.push(line), false)

/** Status code of a GET with `name`'s certificate from `caDir`, or 0 when TLS refuses it. */
async function curl(url: string, caDir: string, name: string, path = '/version'): Promise<number> {
  const p = Bun.spawn(
    [
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--max-time',
      '10',
      '--cacert',
      join(caDir, 'cacert.crt'),
      '--cert',
      join(caDir, `${name}-cert.crt`),
      '--key',
      join(caDir, `${name}-private.pem`),
      `${url}${path}`,
    ],
    { stdout: 'pipe', stderr: 'ignore' },
  )
  const out = await new Response(p.stdout).text()
  await p.exited
  return Number(out) || 0
}

describe.skipIf(!hasCurl || !hasOpenssl)('revoked admin certificates (finding 10)', () => {
  describe('a listener with a client-CRL watcher', () => {
    const root = mkdtempSync(join(tmpdir(), 'kl-crl-listener-'))
    const caDir = join(root, 'ca')
    let ca: CertAuthority
    let watcher: ClientCrlWatcher
    let server: RunningServer
    beforeAll(async () => {
      const settings = resolveCaSettings({ cert_bits: 2048 } as never)
      ca = await CertAuthority.init(caDir, settings, 'pw')
      await ca.createCert('server', { kind: 'server', sanIps: ['127.0.0.1'], sanDns: [] })
      for (const n of ['good', 'bad', 'later']) await ca.createCert(n)
      await ca.revoke({ name: 'bad' })
      const caPem = readFileSync(join(caDir, 'cacert.crt'), 'utf8')
      watcher = await ClientCrlWatcher.start({
        sources: {
          caPems: [caPem],
          files: resolveClientCrlFiles('default', [join(caDir, 'cacert.crt')], root),
        },
        log: getLogger('test'),
        name: 'test',
        pollMs: 100,
      })
      server = startServer({
        name: 'admin',
        hostname: '127.0.0.1',
        port: 0,
        fetch: async (req) => {
          if (new URL(req.url).pathname === '/slow') await Bun.sleep(1500)
          return Response.json({ code: 200, status: 'Success', results: {} })
        },
        tls: {
          key: readFileSync(join(caDir, 'server-private.pem'), 'utf8'),
          cert: readFileSync(join(caDir, 'server-cert.crt'), 'utf8'),
          ca: [caPem],
          requestCert: true,
          crl: watcher,
        },
        log: getLogger('test'),
      })
    })
    afterAll(async () => {
      await server?.stop(100)
      rmSync(root, { recursive: true, force: true })
    })

    test('a revoked certificate is refused at the handshake; a valid one is accepted', async () => {
      expect(await curl(server.url, caDir, 'good')).toBe(200)
      expect(await curl(server.url, caDir, 'bad')).toBe(0)
    })

    test('a live revoke applies within a poll; a request in flight is not dropped', async () => {
      expect(await curl(server.url, caDir, 'later')).toBe(200)
      const inFlight = curl(server.url, caDir, 'good', '/slow')
      await Bun.sleep(200)
      await ca.revoke({ name: 'later' })
      await until(async () => (await curl(server.url, caDir, 'later')) === 0, 5000, 'the revoke')
      expect(await curl(server.url, caDir, 'good')).toBe(200)
      expect(await inFlight).toBe(200)
    })

    test('a broken, foreign or deleted CRL is ignored: the door stays shut, the port open', async () => {
      const der = join(caDir, 'cacrl.der')
      const pem = join(caDir, 'cacrl.pem')
      const saved = [readFileSync(der), readFileSync(pem)] as const
      await CertAuthority.init(join(root, 'other'), ca.settings, 'pw')
      const foreign = readFileSync(join(root, 'other', 'cacrl.der'))
      for (const bytes of [Buffer.from('junk'), saved[0].subarray(0, 50), foreign]) {
        writeFileSync(der, bytes as Uint8Array)
        await watcher.poll()
        expect(await curl(server.url, caDir, 'bad')).toBe(0)
        expect(await curl(server.url, caDir, 'good')).toBe(200)
      }
      rmSync(der)
      rmSync(pem)
      await watcher.poll()
      expect(await curl(server.url, caDir, 'bad')).toBe(0)
      expect(await curl(server.url, caDir, 'good')).toBe(200)
      expect(logged.some((l) => l.includes('client CRL change ignored'))).toBe(true)
      writeFileSync(der, saved[0] as Uint8Array)
      writeFileSync(pem, saved[1] as Uint8Array)
    })
  })

  describe('the control plane process', () => {
    const runs: ChildRun[] = []
    afterAll(async () => {
      await Promise.all(runs.map((r) => r.stop()))
    })

    test('keylime_ca -c revoke takes effect on both TLS ports live and after a restart', async () => {
      const { env, ports, dir } = await controlPlaneEnv()
      const caDir = join(dir, 'cv_ca')
      const start = async () => {
        const run = spawnCollect([process.execPath, MAIN_TS], env)
        runs.push(run)
        await run.waitFor(/keylime control plane started/, 60_000)
        return run
      }
      const keylimeCa = (args: string[]) =>
        Bun.spawnSync([process.execPath, MAIN_TS, 'ca', ...args, '-d', caDir], { env })
      const urls = [
        `https://127.0.0.1:${ports.verifier}`,
        `https://127.0.0.1:${ports.registrarTls}`,
      ]
      let run = await start()
      for (const n of ['admin-a', 'admin-b'])
        expect(keylimeCa(['-c', 'create', '-n', n]).exitCode).toBe(0)
      for (const url of urls) {
        expect(await curl(url, caDir, 'admin-a')).toBe(200)
        expect(await curl(url, caDir, 'admin-b')).toBe(200)
      }
      expect(keylimeCa(['-c', 'revoke', '-n', 'admin-b']).exitCode).toBe(0)
      for (const url of urls) {
        await until(
          async () => (await curl(url, caDir, 'admin-b')) === 0,
          10_000,
          `the revoke on ${url}`,
        )
        expect(await curl(url, caDir, 'admin-a')).toBe(200)
      }
      await run.stop()
      run = await start()
      for (const url of urls) {
        expect(await curl(url, caDir, 'admin-b')).toBe(0)
        expect(await curl(url, caDir, 'admin-a')).toBe(200)
      }
    }, 120_000)
  })
})
