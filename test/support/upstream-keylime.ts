/**
 * Upstream Keylime (Python, 7.14) run from a source tree for interoperability tests, as
 * /work/shared/reference/run-upstream.md describes: configurations generated from the tree's
 * templates (`keylime.cmd.convert_config --defaults`) with our ports, sqlite in a scratch
 * `KEYLIME_DIR`, Debian's `/usr/bin/python3`. Nothing is installed.
 *
 * Upstream's services ignore SIGTERM in their main process; stopping sends SIGTERM to its
 * children (the workers drain and exit, then the main process), then SIGKILL to whatever is left.
 *
 * @module
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Python modules upstream's verifier, registrar and tenant import. */
const MODULES = [
  'tornado',
  'sqlalchemy',
  'alembic',
  'zmq',
  'lark',
  'jsonschema',
  'psutil',
  'cryptography',
  'yaml',
  'requests',
  'packaging',
  'pyasn1',
  'jinja2',
]

/** The interpreter (`KEYLIME_UPSTREAM_PYTHON`, default Debian's). */
export const UPSTREAM_PYTHON = process.env.KEYLIME_UPSTREAM_PYTHON ?? '/usr/bin/python3'

/** Why upstream cannot run here, or undefined when it can. */
export function upstreamMissing(): string | undefined {
  const src = process.env.KEYLIME_UPSTREAM_SRC
  if (src === undefined || src === '') {
    return 'KEYLIME_UPSTREAM_SRC is not set (a keylime/keylime 7.14 source tree; see docs/agent.md)'
  }
  try {
    readFileSync(join(src, 'keylime/cmd/verifier.py'))
  } catch {
    return `KEYLIME_UPSTREAM_SRC=${src} holds no keylime/cmd/verifier.py`
  }
  if (Bun.which(UPSTREAM_PYTHON) === null) return `${UPSTREAM_PYTHON} not found`
  const r = Bun.spawnSync(
    [
      UPSTREAM_PYTHON,
      '-c',
      `import importlib.util as u; print(",".join(m for m in ${JSON.stringify(MODULES)} if u.find_spec(m) is None))`,
    ],
    { stdout: 'pipe', stderr: 'pipe' },
  )
  const missing = r.stdout.toString().trim()
  if (r.exitCode !== 0 || missing !== '') {
    return `python modules missing: ${missing || r.stderr.toString().trim()} (apt-get install python3-tornado python3-sqlalchemy python3-alembic python3-zmq python3-lark python3-jsonschema python3-psutil …)`
  }
  return undefined
}

/** Ports of one upstream deployment. */
export interface UpstreamPorts {
  verifier: number
  registrar: number
  registrarTls: number
  zmq: number
}

/** A running upstream verifier + registrar, and its tenant. */
export interface UpstreamKeylime {
  /** Scratch directory (configs, `KEYLIME_DIR` = `dir/work`, logs). */
  dir: string
  /** `KEYLIME_DIR`: `cv_ca/` holds the CA and the tenant's client certificate. */
  keylimeDir: string
  /** The environment upstream's commands run with. */
  env: Record<string, string>
  /** Runs `keylime_tenant` with `args`; resolves with exit code and output. */
  tenant(args: string[]): Promise<{ code: number; out: string }>
  /** GET on the verifier's admin API with the tenant's client certificate. */
  verifierGet(path: string): Promise<{ status: number; body: Record<string, unknown> }>
  /** Log text of a service. */
  log(name: 'verifier' | 'registrar'): string
  /** Stops both services and removes the directory (unless `keep`). */
  stop(keep?: boolean): Promise<void>
}

/** Sets `key = value` in an INI text (every `key = …` line). */
function setOption(text: string, key: string, value: string | number): string {
  const re = new RegExp(`^${key}\\s*=.*$`, 'gm')
  if (!re.test(text)) throw new Error(`option ${key} not in the generated configuration`)
  return text.replace(re, `${key} = ${value}`)
}

/** The children of `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) out.push(Number(entry))
    } catch {
      // the process ended meanwhile
    }
  }
  return out
}

/** Stops an upstream service: SIGTERM its children, wait, then SIGKILL what is left. */
async function stopService(proc: ReturnType<typeof Bun.spawn>): Promise<void> {
  const kids = childrenOf(proc.pid)
  for (const k of kids) {
    try {
      process.kill(k, 'SIGTERM')
    } catch {
      // gone
    }
  }
  const done = await Promise.race([
    proc.exited.then(() => true),
    Bun.sleep(15_000).then(() => false),
  ])
  if (!done) {
    for (const k of [...kids, proc.pid]) {
      try {
        process.kill(k, 'SIGKILL')
      } catch {
        // gone
      }
    }
    await proc.exited
  }
}

/** Waits until `text()` contains `marker`. */
async function waitFor(text: () => string, marker: string, ms: number, what: string) {
  const end = Date.now() + ms
  while (!text().includes(marker)) {
    if (Date.now() > end) throw new Error(`${what} did not start:\n${text().slice(-3000)}`)
    await Bun.sleep(200)
  }
}

/**
 * Starts upstream's verifier (with `[verifier]` options over the generated defaults) and
 * registrar from `KEYLIME_UPSTREAM_SRC`, with `tpmCertStore` as the tenant's EK trust store.
 */
export async function startUpstreamKeylime(opts: {
  ports: UpstreamPorts
  verifier?: Record<string, string | number>
  tpmCertStore: string
}): Promise<UpstreamKeylime> {
  const src = process.env.KEYLIME_UPSTREAM_SRC!
  const dir = mkdtempSync(join(tmpdir(), 'kl-upstream-'))
  const etc = join(dir, 'etc')
  const keylimeDir = join(dir, 'work')
  for (const d of [etc, keylimeDir, join(dir, 'logs')]) mkdirSync(d)
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    PYTHONPATH: src,
    KEYLIME_DIR: keylimeDir,
    KEYLIME_VERIFIER_CONFIG: join(etc, 'verifier.conf'),
    KEYLIME_REGISTRAR_CONFIG: join(etc, 'registrar.conf'),
    KEYLIME_TENANT_CONFIG: join(etc, 'tenant.conf'),
    KEYLIME_CA_CONFIG: join(etc, 'ca.conf'),
    KEYLIME_LOGGING_CONFIG: join(etc, 'logging.conf'),
  }
  const gen = Bun.spawnSync(
    [
      UPSTREAM_PYTHON,
      '-m',
      'keylime.cmd.convert_config',
      '--defaults',
      '--out',
      etc,
      '--templates',
      join(src, 'templates'),
    ],
    { cwd: src, env, stdout: 'pipe', stderr: 'pipe' },
  )
  if (gen.exitCode !== 0) throw new Error(`convert_config failed: ${gen.stderr.toString()}`)
  const p = opts.ports
  const edit = (file: string, pairs: Record<string, string | number>) => {
    let text = readFileSync(join(etc, file), 'utf8')
    for (const [k, v] of Object.entries(pairs)) text = setOption(text, k, v)
    writeFileSync(join(etc, file), text)
  }
  edit('verifier.conf', {
    port: p.verifier,
    registrar_port: p.registrarTls,
    zmq_port: p.zmq,
    num_workers: 1,
    ...opts.verifier,
  })
  edit('registrar.conf', { port: p.registrar, tls_port: p.registrarTls })
  edit('tenant.conf', {
    verifier_port: p.verifier,
    registrar_port: p.registrarTls,
    tpm_cert_store: opts.tpmCertStore,
  })
  const logs: Record<string, string> = { verifier: '', registrar: '' }
  const spawn = (name: 'verifier' | 'registrar') => {
    const proc = Bun.spawn([UPSTREAM_PYTHON, '-m', `keylime.cmd.${name}`], {
      cwd: keylimeDir,
      env,
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) logs[name] += Buffer.from(chunk).toString('utf8')
    }
    void pump(proc.stdout)
    void pump(proc.stderr)
    return proc
  }
  // the verifier first: it creates the CA the registrar and the tenant use (tls_dir = default)
  const verifier = spawn('verifier')
  const registrar: { proc?: ReturnType<typeof Bun.spawn> } = {}
  const stop = async (keep = false) => {
    await stopService(verifier)
    if (registrar.proc) await stopService(registrar.proc)
    writeFileSync(join(dir, 'logs', 'verifier.log'), logs.verifier!)
    writeFileSync(join(dir, 'logs', 'registrar.log'), logs.registrar!)
    if (!keep) rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitFor(() => logs.verifier!, `Listening on 127.0.0.1:${p.verifier}`, 60_000, 'verifier')
    registrar.proc = spawn('registrar')
    await waitFor(
      () => logs.registrar!,
      `Listening on 127.0.0.1:${p.registrar}`,
      30_000,
      'registrar',
    )
  } catch (err) {
    await stop(true)
    throw err
  }
  const ca = join(keylimeDir, 'cv_ca')
  const tls = {
    ca: readFileSync(join(ca, 'cacert.crt'), 'utf8'),
    cert: readFileSync(join(ca, 'client-cert.crt'), 'utf8'),
    key: readFileSync(join(ca, 'client-private.pem'), 'utf8'),
  }
  return {
    dir,
    keylimeDir,
    env,
    async tenant(args) {
      const proc = Bun.spawn([UPSTREAM_PYTHON, '-m', 'keylime.cmd.tenant', ...args], {
        cwd: keylimeDir,
        env,
        stdout: 'pipe',
        stderr: 'pipe',
      })
      const [out, err, code] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ])
      return { code, out: out + err }
    },
    async verifierGet(path) {
      const res = await fetch(`https://127.0.0.1:${p.verifier}${path}`, { tls })
      return { status: res.status, body: (await res.json()) as Record<string, unknown> }
    },
    log: (name) => logs[name]!,
    stop,
  }
}
