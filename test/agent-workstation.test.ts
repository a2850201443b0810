/**
 * The agent process (`bun src/agent/main.ts`) on a workstation with swtpm, as docs/agent.md runs
 * it:
 *
 * - the TPM is not held between operations: `tpm2_pcrread` / `tpm2_pcrextend` on the same swtpm
 *   socket answer while the agent runs, between and during its quotes, and the quotes verify;
 * - `run_as` (as root): a missing user or group, or an account that cannot use keylime_dir, stops
 *   the agent with a message naming `run_as` before it sends anything to the registrar; a good
 *   account runs the agent, owns the secure tmpfs, and the tmpfs is unmounted when the agent
 *   stops — on SIGTERM, and after a SIGKILL too (the root helper);
 * - as root without `run_as`, the tmpfs the agent mounted is unmounted on SIGINT; one that was
 *   mounted before it started is left alone.
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseTpm2bPublic } from '../src/tpm/public-area.ts'
import { verifyQuote } from '../src/tpm/verify-quote.ts'
import { type ChildRun, freePort, spawnCollect } from './support/control-plane-process.ts'
import { type RegistrarProcess, startRegistrarProcess } from './support/registrar-process.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from './support/swtpm.ts'
import { until } from './support/until.ts'

const AGENT_MAIN = resolve(import.meta.dir, '../src/agent/main.ts')
const missing = missingSwtpmTools(['tpm2_pcrread', 'tpm2_pcrextend', 'timeout'])
const isRoot = process.getuid?.() === 0
if (missing.length > 0) {
  console.log(`skipping agent workstation tests: missing ${missing.join(', ')}`)
} else if (!isRoot) {
  console.log('skipping the run_as and secure-mount tests: they need root')
}

/** Whether `path` is a mount point now (/proc/self/mounts). */
function mounted(path: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === path)
}

/** The real uid of process `pid`. */
function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'))
  return Number(line?.split(/\s+/)[1])
}

/** Runs a tpm2-tools command against `tcti`, killed after 10 s. */
function tpm2(tcti: string, args: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(['timeout', '10', ...args.slice(0, 1), '-T', tcti, ...args.slice(1)], {
    stdout: 'pipe',
    stderr: 'pipe',
  })
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() }
}

describe.skipIf(missing.length > 0)('keylime-agent on a workstation with swtpm', () => {
  let swtpm: Swtpm
  let registrar: RegistrarProcess
  let work: string
  /** Requests the stub registrar received (it must receive none). */
  let stubHits = 0
  let stub: ReturnType<typeof Bun.serve>
  const agents: ChildRun[] = []

  /** Starts the agent with its own keylime_dir `dir` and `extra` environment. */
  const startAgent = async (
    dir: string,
    extra: Record<string, string>,
    registrarPort = registrar.ports.registrar,
  ) => {
    const port = await freePort()
    const conf = join(work, `agent-${port}.conf`)
    writeFileSync(
      conf,
      [
        '[agent]',
        'uuid = "generate"',
        `port = ${port}`,
        `contact_port = ${port}`,
        `registrar_port = ${registrarPort}`,
        'enable_agent_mtls = false',
        'payload_script = ""',
        'max_retries = 0',
        `ima_ml_path = "${join(work, 'no-ima')}"`,
        `measuredboot_ml_path = "${join(work, 'no-log')}"`,
        '',
      ].join('\n'),
    )
    const run = spawnCollect([process.execPath, AGENT_MAIN, '--config', conf], {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/root',
      KEYLIME_DIR: dir,
      TCTI: swtpm.tcti,
      ...extra,
    })
    agents.push(run)
    return { run, port }
  }

  beforeAll(async () => {
    swtpm = await startSwtpm({ banks: 'sha256' })
    registrar = await startRegistrarProcess()
    work = mkdtempSync(join(tmpdir(), 'kl-agent-ws-'))
    chmodSync(work, 0o755) // the run_as account must reach its keylime_dir inside
    stub = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: () => {
        stubHits++
        return new Response('{}', { status: 503 })
      },
    })
  }, 60_000)

  afterAll(async () => {
    for (const a of agents) await a.stop()
    stub?.stop(true)
    await registrar?.run.stop()
    await swtpm?.remove()
    if (work) {
      for (const l of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
        const mnt = l.split(' ')[1]
        if (mnt?.startsWith(work)) Bun.spawnSync(['umount', '-l', mnt])
      }
      rmSync(work, { recursive: true, force: true })
    }
  })

  test('tpm2_pcrread and tpm2_pcrextend use the swtpm socket between and during agent quotes', async () => {
    const dir = join(work, 'shared')
    const { run, port } = await startAgent(dir, {})
    await run.waitFor(/registered and activated/, 30_000)
    const agentData = JSON.parse(readFileSync(join(dir, 'agent_data.json'), 'utf8')) as {
      ak_public: number[]
    }
    const akPublic = parseTpm2bPublic(Uint8Array.from(agentData.ak_public))
    const quote = async (nonce: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/v2.6/quotes/identity?nonce=${nonce}`)
      const body = (await res.json()) as { results: { quote: string } }
      expect(res.status).toBe(200)
      verifyQuote({ quote: body.results.quote, akPublic, nonce, hashAlg: 'sha256' })
    }
    for (let i = 0; i < 3; i++) {
      await quote(`between${i}`)
      const read = tpm2(swtpm.tcti, ['tpm2_pcrread', 'sha256:16,23'])
      expect(read.code, read.out).toBe(0)
      expect(read.out).toContain('16: 0x')
      const digest = randomBytes(32).toString('hex')
      const ext = tpm2(swtpm.tcti, ['tpm2_pcrextend', `23:sha256=${digest}`])
      expect(ext.code, ext.out).toBe(0)
    }
    // quotes in flight while tpm2-tools run: both sides take turns on the socket
    const tools = Bun.spawn(
      [
        'timeout',
        '20',
        'sh',
        '-c',
        `for i in 1 2 3 4 5; do tpm2_pcrread -T ${swtpm.tcti} sha256:23 >/dev/null || exit 1; done`,
      ],
      { stdout: 'ignore', stderr: 'pipe' },
    )
    await Promise.all(['c0', 'c1', 'c2', 'c3', 'c4', 'c5'].map(quote))
    expect(await tools.exited).toBe(0)
    expect(await run.stop()).toBe(0)
  }, 60_000)

  test.skipIf(!isRoot)(
    'run_as naming a missing user or group, or an account that cannot write keylime_dir, stops the agent before it registers',
    async () => {
      const rootOwned = join(work, 'root-owned')
      mkdirSync(rootOwned, { mode: 0o700 })
      for (const [runAs, dir, message] of [
        ['no-such-user:tss', join(work, 'no-user'), 'no user "no-such-user"'],
        ['nobody:no-such-group', join(work, 'no-group'), 'no group "no-such-group"'],
        [
          'nobody:nogroup',
          rootOwned,
          `${rootOwned} is not writable by that account (chown -R nobody:nogroup ${rootOwned})`,
        ],
      ] as const) {
        const { run } = await startAgent(dir, { KEYLIME_AGENT_RUN_AS: runAs }, stub.port)
        expect(await run.proc.exited).toBe(1)
        expect(run.output()).toContain(`option run_as = "${runAs}": ${message}`)
        expect(run.output()).not.toContain('registrar')
        expect(mounted(join(dir, 'secure'))).toBe(false)
      }
      expect(stubHits).toBe(0)
    },
    60_000,
  )

  test.skipIf(!isRoot)(
    'run_as: the agent runs as the account, owns the tmpfs, unmounts it on SIGTERM and after SIGKILL',
    async () => {
      const dir = join(work, 'nobody')
      mkdirSync(dir, { mode: 0o700 })
      chownSync(dir, 65534, 65534)
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        const { run } = await startAgent(dir, { KEYLIME_AGENT_RUN_AS: 'nobody:nogroup' })
        await run.waitFor(/registered and activated/, 30_000)
        expect(run.output()).toContain('dropped privileges')
        expect(uidOf(run.proc.pid)).toBe(65534)
        const secure = join(dir, 'secure')
        expect(mounted(secure)).toBe(true)
        expect(Bun.spawnSync(['stat', '-c', '%u:%g %a', secure]).stdout.toString().trim()).toBe(
          '65534:65534 700',
        )
        run.proc.kill(signal)
        const code = await run.proc.exited
        if (signal === 'SIGTERM') {
          expect(code).toBe(0)
          expect(run.output()).toContain('secure directory unmounted')
        }
        await until(() => !mounted(secure), 5000, `${secure} unmounted after ${signal}`)
      }
    },
    90_000,
  )

  test.skipIf(!isRoot)(
    'as root without run_as, the tmpfs the agent mounted is unmounted on SIGINT',
    async () => {
      const dir = join(work, 'root')
      const { run } = await startAgent(dir, {})
      await run.waitFor(/registered and activated/, 30_000)
      expect(mounted(join(dir, 'secure'))).toBe(true)
      run.proc.kill('SIGINT')
      expect(await run.proc.exited).toBe(0)
      expect(run.output()).toContain('secure directory unmounted')
      expect(mounted(join(dir, 'secure'))).toBe(false)
    },
    60_000,
  )

  test.skipIf(!isRoot)(
    'a tmpfs that was mounted before the agent started stays mounted when it stops',
    async () => {
      const dir = join(work, 'premounted')
      const secure = join(dir, 'secure')
      mkdirSync(secure, { recursive: true, mode: 0o700 })
      expect(
        Bun.spawnSync(['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', secure])
          .exitCode,
      ).toBe(0)
      const { run } = await startAgent(dir, {})
      await run.waitFor(/registered and activated/, 30_000)
      expect(await run.stop()).toBe(0)
      expect(run.output()).not.toContain('secure directory unmounted')
      expect(mounted(secure)).toBe(true)
      Bun.spawnSync(['umount', secure])
    },
    60_000,
  )
})
