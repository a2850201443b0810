/**
 * The control plane as a user runs it: `keylime` on an empty KEYLIME_DIR starts verifier and
 * registrar on the embedded database, creates cv_ca, answers /version over mTLS with the generated
 * client certificate only, keeps its certificates and database across restarts, stops cleanly on
 * SIGTERM, and refuses bad configuration with a message naming the option.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { readFileSync, statSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import { sanHostname } from '../src/ca/san-entries.ts'
import { MtlsClient } from '../src/http/mtls-client.ts'
import { PeerUnreachable } from '../src/http/peer-errors.ts'
import { hasOpenssl, makeTestPki } from './support/openssl-pki.ts'
import {
  type ChildRun,
  controlPlaneEnv,
  MAIN_TS,
  spawnCollect,
} from './support/control-plane-process.ts'

const KEYLIME_CMD = [process.execPath, MAIN_TS]

const runs: ChildRun[] = []
afterAll(async () => {
  await Promise.all(runs.map((r) => r.stop()))
})

function start(env: Record<string, string>, args: string[] = []): ChildRun {
  const run = spawnCollect([...KEYLIME_CMD, ...args], env)
  runs.push(run)
  return run
}

describe('keylime control plane', () => {
  test('starts on an empty KEYLIME_DIR, serves mTLS, restarts with the same state', async () => {
    const { env, ports, dir } = await controlPlaneEnv()
    const first = start(env)
    await first.waitFor(/keylime control plane started/)
    expect(first.output()).toContain('using the embedded database (PGlite)')

    const ca = join(dir, 'cv_ca')
    expect(statSync(ca).mode & 0o777).toBe(0o700)
    for (const f of [
      'cacert.crt',
      'ca-public.pem',
      'cacrl.der',
      'cacrl.pem',
      'server-cert.crt',
      'server-private.pem',
      'server-public.pem',
      'client-cert.crt',
      'client-private.pem',
      'client-public.pem',
    ]) {
      expect(statSync(join(ca, f)).isFile()).toBe(true)
    }
    expect(statSync(join(ca, 'server-private.pem')).mode & 0o777).toBe(0o600)
    const caPem = readFileSync(join(ca, 'cacert.crt'), 'utf8')
    const client = new MtlsClient({
      cert: readFileSync(join(ca, 'client-cert.crt'), 'utf8'),
      key: readFileSync(join(ca, 'client-private.pem'), 'utf8'),
      ca: [caPem],
      timeoutMs: 5000,
    })
    for (const url of [
      `https://127.0.0.1:${ports.verifier}/version`,
      `https://127.0.0.1:${ports.registrarTls}/version`,
    ]) {
      const res = await client.request(url)
      expect(res.status).toBe(200)
      expect(res.body).toMatchObject({
        code: 200,
        status: 'Success',
        results: { current_version: '2.6' },
      })
    }
    // The agent-facing registrar port is plain HTTP, as upstream.
    const plain = (await fetch(`http://127.0.0.1:${ports.registrar}/version`).then((r) =>
      r.json(),
    )) as {
      results: { current_version: string }
    }
    expect(plain.results.current_version).toBe('2.6')
    // Without a client certificate: public actions only (upstream 7.14); with one from another
    // CA: refused before any answer.
    const anon = new MtlsClient({ ca: [caPem], timeoutMs: 5000 })
    expect((await anon.request(`https://127.0.0.1:${ports.verifier}/version`)).status).toBe(200)
    const list = await anon.request(`https://127.0.0.1:${ports.verifier}/v2.6/agents`)
    expect(list.status).toBe(403)
    if (hasOpenssl) {
      const pki = makeTestPki()
      const rogue = new MtlsClient({
        cert: pki.rogueClientCert,
        key: pki.rogueClientKey,
        ca: [caPem],
        timeoutMs: 5000,
      })
      expect(rogue.request(`https://127.0.0.1:${ports.verifier}/version`)).rejects.toBeInstanceOf(
        PeerUnreachable,
      )
    }
    // Malformed input is a 4xx envelope, never a 500.
    const bad = await client.request(`https://127.0.0.1:${ports.verifier}/v2.6/agents/x`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
    })
    expect(bad.status).toBeGreaterThanOrEqual(400)
    expect(bad.status).toBeLessThan(500)

    expect(await first.stop()).toBe(0)
    expect(first.output()).toContain('shutdown complete')

    const fingerprint = new X509Certificate(caPem).fingerprint256
    const second = start(env)
    await second.waitFor(/keylime control plane started/)
    expect(second.output()).toContain('created=false')
    expect(second.output()).not.toContain('generating new CA')
    expect(new X509Certificate(readFileSync(join(ca, 'cacert.crt'), 'utf8')).fingerprint256).toBe(
      fingerprint,
    )
    expect((await client.request(`https://127.0.0.1:${ports.verifier}/version`)).status).toBe(200)
    expect(await second.stop()).toBe(0)
  }, 60_000)

  test("the generated server certificate names both roles' configured names", async () => {
    const { env, dir } = await controlPlaneEnv()
    env.KEYLIME_VERIFIER_CERT_SUBJECT_ALTERNATIVE_NAMES = 'verifier.example,192.0.2.10'
    env.KEYLIME_REGISTRAR_CERT_SUBJECT_ALTERNATIVE_NAMES = 'registrar.example'
    const run = start(env)
    await run.waitFor(/keylime control plane started/)
    expect(await run.stop()).toBe(0)
    const cert = new X509Certificate(readFileSync(join(dir, 'cv_ca/server-cert.crt')))
    const names = (cert.subjectAltName ?? '').split(', ').sort()
    const host = sanHostname()
    expect(names).toEqual(
      [
        'DNS:localhost',
        'DNS:registrar.example',
        'DNS:verifier.example',
        'IP Address:127.0.0.1',
        'IP Address:192.0.2.10',
        'IP Address:0:0:0:0:0:0:0:1',
        ...(host === undefined ? [] : [`DNS:${host}`]),
      ].sort(),
    )
  }, 30_000)

  test('--verifier runs only the verifier', async () => {
    const { env, ports } = await controlPlaneEnv()
    const run = start(env, ['--verifier'])
    await run.waitFor(/keylime control plane started roles=verifier /)
    expect(run.output()).not.toContain('registrar listening')
    const refused = await fetch(`http://127.0.0.1:${ports.registrar}/version`).then(
      () => 'open',
      () => 'refused',
    )
    expect(refused).toBe('refused')
    expect(await run.stop()).toBe(0)
  }, 30_000)

  test('a bad value stops start-up with a message naming the option', async () => {
    const { env } = await controlPlaneEnv()
    env.KEYLIME_VERIFIER_QUOTE_INTERVAL = 'often'
    const run = start(env)
    const code = await run.proc.exited
    expect(code).not.toBe(0)
    expect(run.output()).toContain('KEYLIME_VERIFIER_QUOTE_INTERVAL')
    expect(run.output()).toContain('quote_interval')
    expect(run.output()).not.toContain('    at ') // no stack trace
  }, 30_000)

  test('a bad value in a config file names file, section and option', async () => {
    const { env } = await controlPlaneEnv()
    await Bun.write(env.KEYLIME_REGISTRAR_CONFIG!, '[registrar]\nmax_workers = lots\n')
    const run = start(env)
    expect(await run.proc.exited).not.toBe(0)
    expect(run.output()).toContain(env.KEYLIME_REGISTRAR_CONFIG!)
    expect(run.output()).toContain('max_workers')
    expect(run.output()).toContain('[registrar]')
  }, 30_000)

  test('a port in use is a clear start-up error', async () => {
    const { env, ports } = await controlPlaneEnv()
    const blocker = Bun.serve({
      hostname: '127.0.0.1',
      port: ports.registrar,
      fetch: () => new Response('x'),
    })
    try {
      const run = start(env)
      expect(await run.proc.exited).toBe(1)
      expect(run.output()).toContain(`cannot listen on 127.0.0.1:${ports.registrar}`)
    } finally {
      blocker.stop(true)
    }
  }, 30_000)

  test('unknown commands and not-yet-built tools exit non-zero with a message', async () => {
    const { env } = await controlPlaneEnv()
    const bogus = start(env, ['frobnicate'])
    expect(await bogus.proc.exited).toBe(2)
    expect(bogus.output()).toContain('unknown command "frobnicate"')
    const help = start(env, ['--help'])
    expect(await help.proc.exited).toBe(0)
    expect(help.output()).toContain('usage: keylime')
  }, 30_000)
})
