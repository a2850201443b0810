/**
 * Runs the `keylime` control plane as a real child process for end-to-end tests: its own
 * KEYLIME_DIR, free ports on 127.0.0.1, config files isolated from the machine's /etc/keylime.
 * @module
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createTestCa } from './verifier-harness.ts'

/** Path of the source entry point. */
export const MAIN_TS = resolve(import.meta.dir, '../../src/main.ts')

/** A free TCP port on 127.0.0.1 (best effort: it is released before use). */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer()
    srv.once('error', rej)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => res(port))
    })
  })
}

/** Ports of one control plane. */
export interface Ports {
  verifier: number
  registrar: number
  registrarTls: number
}

/** Allocates ports and an isolated environment for a control plane. */
export async function controlPlaneEnv(
  keylimeDir?: string,
): Promise<{ env: Record<string, string>; ports: Ports; dir: string }> {
  const dir = keylimeDir ?? mkdtempSync(join(tmpdir(), 'kl-cp-'))
  const ports = {
    verifier: await freePort(),
    registrar: await freePort(),
    registrarTls: await freePort(),
  }
  const confDir = mkdtempSync(join(tmpdir(), 'kl-conf-'))
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    KEYLIME_DIR: dir,
    KEYLIME_VERIFIER_PORT: String(ports.verifier),
    KEYLIME_REGISTRAR_PORT: String(ports.registrar),
    KEYLIME_REGISTRAR_TLS_PORT: String(ports.registrarTls),
  }
  // Point every component at an (empty) file of its own so /etc/keylime on this machine is ignored.
  for (const c of ['verifier', 'registrar', 'tenant', 'ca', 'logging']) {
    const f = join(confDir, `${c}.conf`)
    writeFileSync(f, c === 'logging' ? '' : `[${c}]\n`)
    env[`KEYLIME_${c.toUpperCase()}_CONFIG`] = f
  }
  return { env, ports, dir }
}

/** A running child process with its collected output. */
export interface ChildRun {
  proc: ReturnType<typeof Bun.spawn>
  output: () => string
  /** Resolves when a line matching `re` appears (rejects on exit or timeout). */
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<string>
  /** SIGTERM and wait; returns the exit code. */
  stop: () => Promise<number>
}

/** Spawns `cmd` collecting stdout+stderr. */
export function spawnCollect(cmd: string[], env: Record<string, string>): ChildRun {
  const proc = Bun.spawn(cmd, { env, stdout: 'pipe', stderr: 'pipe' })
  let out = ''
  const waiters: Array<() => void> = []
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder()
    for await (const chunk of stream) {
      out += dec.decode(chunk)
      for (const w of waiters.splice(0)) w()
    }
  }
  void pump(proc.stdout as ReadableStream<Uint8Array>)
  void pump(proc.stderr as ReadableStream<Uint8Array>)
  const waitFor = (re: RegExp, timeoutMs = 15_000) =>
    new Promise<string>((res, rej) => {
      const timer = setTimeout(
        () => rej(new Error(`timeout waiting for ${re}; output:\n${out}`)),
        timeoutMs,
      )
      const check = () => {
        const m = re.exec(out)
        if (m) {
          clearTimeout(timer)
          res(m[0])
        } else if (proc.exitCode !== null) {
          clearTimeout(timer)
          rej(new Error(`process exited (${proc.exitCode}) before ${re}; output:\n${out}`))
        } else waiters.push(check)
      }
      void proc.exited.then(() =>
        setTimeout(() => {
          for (const w of waiters.splice(0)) w()
        }, 50),
      )
      check()
    })
  return {
    proc,
    output: () => out,
    waitFor,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM')
      return proc.exited
    },
  }
}

/**
 * A `keylime --verifier` child process on a free port of 127.0.0.1 with a fresh cv_ca in its own
 * `KEYLIME_DIR` (`dir`; client material in `dir/cv_ca`), embedded database, WARNING logs; `env`
 * adds or overrides variables, `main` is the entry (default this tree's), `bunArgs` go before it
 * (e.g. `--preload`). Resolves once it serves.
 */
export async function spawnVerifier(
  env: Record<string, string> = {},
  opts: { main?: string; bunArgs?: string[] } = {},
): Promise<{ run: ChildRun; url: string; dir: string }> {
  const base = await controlPlaneEnv()
  await createTestCa(base.dir)
  const port = await freePort()
  const cmd = [process.execPath, ...(opts.bunArgs ?? []), opts.main ?? MAIN_TS, '--verifier']
  const run = spawnCollect(cmd, {
    ...base.env,
    KEYLIME_VERIFIER_IP: '127.0.0.1',
    KEYLIME_VERIFIER_PORT: String(port),
    KEYLIME_VERIFIER_DATABASE_URL: 'sqlite',
    KEYLIME_LOGGING_LEVEL: 'WARNING',
    ...env,
  })
  await run.waitFor(/keylime control plane started/, 60_000).catch((err) => {
    if (run.proc.exitCode === null) run.proc.kill('SIGKILL')
    throw err
  })
  return { run, url: `https://127.0.0.1:${port}`, dir: base.dir }
}
