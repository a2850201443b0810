/**
 * Test support for the swtpm-backed suites (agent, registrar): a manufactured swtpm (EK
 * certificates from a throwaway swtpm_localca, RSA-2048 at 0x01c00002 and ECC P-384 at 0x01c00016, persistent EKs) listening
 * on a random loopback port pair, started with `not-need-init,startup-clear` (wire-formats §6.6).
 *
 * @module
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Tools the swtpm-backed suites need. */
export const SWTPM_TOOLS = ['swtpm', 'swtpm_setup', 'swtpm_localca'] as const

/** The tools that are missing on this machine. */
export function missingSwtpmTools(extra: readonly string[] = []): string[] {
  return [...SWTPM_TOOLS, ...extra].filter((t) => Bun.which(t) === null)
}

/** A running swtpm without manufacturer set-up (a blank TPM: no EK certificates, no EKs). */
export interface BareSwtpm {
  /** Data port on 127.0.0.1. */
  port: number
  /** `swtpm:host=127.0.0.1,port=P` for TCTI. */
  tcti: string
  /** Work directory (state, CA). */
  dir: string
  /** Stops swtpm (state kept until {@link BareSwtpm.remove}). */
  stop(): Promise<void>
  /** Restarts swtpm on the same state and port (a TPM power cycle: PCRs reset). */
  restart(): Promise<void>
  /** Stops and deletes the directory. */
  remove(): Promise<void>
}

/** A running manufactured swtpm. */
export interface Swtpm extends BareSwtpm {
  /** PEM of the swtpm local CA root (EK certificate issuer chain root). */
  rootCaPem: string
  /** PEM of the intermediate CA. */
  intermediatePem: string
}

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: 'pipe', stderr: 'pipe' })
  if (r.exitCode !== 0) {
    throw new Error(
      `${cmd[0]} failed (${r.exitCode}): ${r.stderr.toString()}${r.stdout.toString()}`,
    )
  }
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/** Manufactures a TPM state and starts swtpm on a random free port pair. */
export async function startSwtpm(opts: { banks?: string } = {}): Promise<Swtpm> {
  const dir = mkdtempSync(join(tmpdir(), 'kl-swtpm-'))
  for (const d of ['ca', 'state']) mkdirSync(join(dir, d))
  writeFileSync(
    join(dir, 'localca.conf'),
    `statedir = ${dir}/ca\nsigningkey = ${dir}/ca/signkey.pem\nissuercert = ${dir}/ca/issuercert.pem\ncertserial = ${dir}/ca/certserial\n`,
  )
  writeFileSync(join(dir, 'localca.options'), '--platform-manufacturer keylime-ts\n')
  writeFileSync(
    join(dir, 'setup.conf'),
    `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${dir}/localca.conf\ncreate_certs_tool_options = ${dir}/localca.options\n`,
  )
  run([
    'swtpm_setup',
    '--tpm2',
    '--tpmstate',
    join(dir, 'state'),
    '--create-ek-cert',
    '--pcr-banks',
    opts.banks ?? 'sha1,sha256',
    '--config',
    join(dir, 'setup.conf'),
    '--logfile',
    join(dir, 'setup.log'),
    '--overwrite',
  ])
  return {
    ...(await launchSwtpm(dir)),
    rootCaPem: readFileSync(join(dir, 'ca', 'swtpm-localca-rootca-cert.pem'), 'utf8'),
    intermediatePem: readFileSync(join(dir, 'ca', 'issuercert.pem'), 'utf8'),
  }
}

/**
 * Starts swtpm on a blank TPM state (no `swtpm_setup`: tests that create their own EKs with
 * tpm2-tools) on a random free port pair. `dir` is the work directory (default: a new temporary
 * one); the state lives in `dir/state`.
 */
export async function startBareSwtpm(
  dir = mkdtempSync(join(tmpdir(), 'kl-swtpm-')),
): Promise<BareSwtpm> {
  mkdirSync(join(dir, 'state'), { recursive: true })
  return launchSwtpm(dir)
}

/** Starts `swtpm socket` on the state in `dir/state`, on a random free even port and the next. */
async function launchSwtpm(dir: string): Promise<BareSwtpm> {
  let proc: ReturnType<typeof Bun.spawn> | undefined
  let port = 0
  const spawnOn = async (p: number): Promise<boolean> => {
    proc = Bun.spawn(
      [
        'swtpm',
        'socket',
        '--tpm2',
        '--server',
        `type=tcp,port=${p},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${p + 1},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
        '--tpmstate',
        `dir=${join(dir, 'state')}`,
      ],
      { stdout: 'ignore', stderr: 'ignore' },
    )
    for (let i = 0; i < 100; i++) {
      await Bun.sleep(20)
      if (proc.exitCode !== null) return false
      if (await canConnect(p)) return true
    }
    proc.kill()
    return false
  }
  let started = false
  for (let attempt = 0; attempt < 8 && !started; attempt++) {
    port = 20000 + 2 * Math.floor(Math.random() * 10000)
    started = await spawnOn(port)
  }
  if (!started) throw new Error('swtpm did not start')
  const stop = async () => {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill()
      await proc.exited
    }
  }
  return {
    port,
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    dir,
    stop,
    async restart() {
      await stop()
      for (let i = 0; i < 50; i++) {
        if (await spawnOn(port)) return
        await Bun.sleep(100)
      }
      throw new Error('swtpm did not restart')
    },
    async remove() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
