/**
 * The slim agent build: the bundle of src/agent/main.ts holds no control-plane code or
 * dependencies (registrar, verifier, tenant, CA, database, HTTP framework), and the compiled
 * `keylime-agent` loads its tpm_device addon from the embedded copy (a FIFO stands in for the
 * TPM device: it echoes the first command, which the agent then reports as a TPM error — after
 * logging that the transport is the addon).
 *
 * @module
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dir, '..')
const ADDON = join(ROOT, 'src/agent/native/build/Release/tpm_device.node')
const NODE_GYP = join(ROOT, 'node_modules/.bin/node-gyp')
const FORBIDDEN = [
  /src\/(registrar|verifier|tenant|ca|db|cli|config|http|ima|mb)\//,
  /^node_modules\/(drizzle-orm|drizzle-kit|@electric-sql|postgres|hono|pkijs|prom-client|pino)\//,
  // the mTLS certificate is written by src/agent/create-self-signed-cert.ts (idle RSS ≤ 60 MB)
  /^node_modules\/(@peculiar|tsyringe|reflect-metadata|asn1js)\//,
]

function ensureAddon(): string | undefined {
  if (existsSync(ADDON)) return undefined
  if (!existsSync(NODE_GYP)) return 'node-gyp is not installed (npm install)'
  const r = Bun.spawnSync([NODE_GYP, 'rebuild', '--nodedir=/usr'], {
    cwd: join(ROOT, 'src/agent/native'),
    stdout: 'ignore',
    stderr: 'pipe',
  })
  return r.exitCode === 0 ? undefined : `tpm_device addon does not build: ${r.stderr}`
}

const skip = ensureAddon()
if (skip !== undefined) console.log(`skipping agent bundle tests: ${skip}`)

describe.skipIf(skip !== undefined)('slim agent bundle', () => {
  const work = mkdtempSync(join(tmpdir(), 'kl-agent-bundle-'))
  afterAll(() => {
    Bun.spawnSync(['umount', join(work, 'kl', 'secure')], { stderr: 'ignore' })
    rmSync(work, { recursive: true, force: true })
  })

  test('module list: src/agent, pure src/tpm and small libraries only', () => {
    const r = Bun.spawnSync(
      [
        process.execPath,
        'build',
        '--target=bun',
        '--format=esm',
        `--metafile=${join(work, 'meta.json')}`,
        `--outdir=${join(work, 'out')}`,
        join(ROOT, 'src/agent/main.ts'),
      ],
      { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' },
    )
    expect(r.exitCode).toBe(0)
    const inputs = Object.keys(
      (JSON.parse(readFileSync(join(work, 'meta.json'), 'utf8')) as { inputs: object }).inputs,
    )
    expect(inputs.some((i) => i.includes('src/agent/main.ts'))).toBe(true)
    expect(inputs.some((i) => i.endsWith('tpm_device.node'))).toBe(true)
    const bad = inputs.filter((i) => FORBIDDEN.some((re) => re.test(i)))
    expect(bad).toEqual([])
    expect(inputs.filter((i) => i.includes('@peculiar/x509'))).toEqual([])
  })

  test('compiled binary: --version, and the embedded addon drives a device', async () => {
    const bin = join(work, 'keylime-agent')
    const c = Bun.spawnSync(
      [process.execPath, 'build', '--compile', join(ROOT, 'src/agent/main.ts'), '--outfile', bin],
      { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' },
    )
    expect(c.exitCode).toBe(0)
    expect(Bun.spawnSync([bin, '--version']).stdout.toString()).toMatch(/^keylime-agent \d/)
    const fifo = join(work, 'tpm')
    Bun.spawnSync(['mkfifo', fifo])
    const run = Bun.spawnSync([bin], {
      cwd: work,
      env: {
        PATH: process.env.PATH ?? '',
        TMPDIR: work,
        KEYLIME_AGENT_CONFIG: join(work, 'none.conf'),
        KEYLIME_AGENT_KEYLIME_DIR: join(work, 'kl'),
        TCTI: `device:${fifo}`,
      },
      stdout: 'pipe',
      stderr: 'pipe',
      timeout: 30_000,
    })
    const out = run.stdout.toString() + run.stderr.toString()
    expect(out).toContain(`TPM transport open tcti="device:${fifo} (addon)"`)
    expect(out).toContain('TPM_RC')
    expect(run.exitCode).toBe(1)
  }, 60_000)
})
