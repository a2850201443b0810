/**
 * The compiled `dist/keylime` (built by `scripts/build.sh`, which the test command runs first) works
 * on its own: copied to a directory with no node_modules, it starts the control plane on the embedded
 * database, serves mTLS, checks it with `keylime health` (the image's health check), and answers to
 * its busybox names (`keylime_ca`, `keylime_tenant`, …).
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { MtlsClient } from '../src/http/mtls-client.ts'
import { type ChildRun, controlPlaneEnv, spawnCollect } from './support/control-plane-process.ts'

const BUILT = process.env.KEYLIME_BIN_UNDER_TEST ?? resolve(import.meta.dir, '../dist/keylime')
const present = existsSync(BUILT)
if (!present)
  console.log(`skipping compiled-binary tests: ${BUILT} not built (run scripts/build.sh)`)

const runs: ChildRun[] = []
afterAll(async () => {
  await Promise.all(runs.map((r) => r.stop()))
})

describe.skipIf(!present)('compiled dist/keylime', () => {
  const binDir = mkdtempSync(join(tmpdir(), 'kl-bin-'))
  const bin = join(binDir, 'keylime')
  if (present) {
    copyFileSync(BUILT, bin)
    for (const name of ['keylime_ca', 'keylime_tenant', 'keylime_verifier'])
      symlinkSync('keylime', join(binDir, name))
  }

  test('runs the control plane with no node_modules around', async () => {
    const { env, ports, dir } = await controlPlaneEnv()
    const run = spawnCollect([bin], { ...env, PWD: binDir })
    runs.push(run)
    await run.waitFor(/keylime control plane started/, 30_000)
    const ca = join(dir, 'cv_ca')
    const client = new MtlsClient({
      cert: readFileSync(join(ca, 'client-cert.crt'), 'utf8'),
      key: readFileSync(join(ca, 'client-private.pem'), 'utf8'),
      ca: [readFileSync(join(ca, 'cacert.crt'), 'utf8')],
    })
    const res = await client.request(`https://127.0.0.1:${ports.verifier}/version`)
    expect(res.body).toMatchObject({ code: 200, results: { current_version: '2.6' } })
    const health = Bun.spawn([bin, 'health'], { env: { ...env, PWD: binDir }, stdout: 'pipe' })
    expect(await health.exited).toBe(0)
    expect(await new Response(health.stdout).text()).toBe('verifier: ok\nregistrar: ok\n')
    expect(await run.stop()).toBe(0)
    // The verifier's check workers are inside the binary (second entry point of scripts/build.sh).
    expect(run.output()).not.toContain('check worker')
    expect(run.output()).not.toContain('check workers unavailable')
  }, 60_000)

  test('answers to its busybox names', async () => {
    const { env, dir } = await controlPlaneEnv()
    const caRun = spawnCollect(
      [join(binDir, 'keylime_ca'), '-c', 'init', '-d', join(dir, 'myca')],
      {
        ...env,
        KEYLIME_CA_PASSWORD: 'test-password',
      },
    )
    expect(await caRun.proc.exited).toBe(0)
    expect(existsSync(join(dir, 'myca', 'cacert.crt'))).toBe(true)

    const tenant = spawnCollect([join(binDir, 'keylime_tenant'), '-c', 'reglist'], env)
    // No control plane and no cv_ca here: the tenant runs and names the missing client certificate.
    expect(await tenant.proc.exited).toBe(8)
    expect(tenant.output()).toContain('client_cert')

    const version = spawnCollect([bin, '--version'], env)
    expect(await version.proc.exited).toBe(0)
    expect(version.output()).toMatch(/^keylime-ts \d+\.\d+\.\d+/)
  }, 60_000)
})
