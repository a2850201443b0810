/**
 * Pieces shared by the QEMU guest end-to-end tests (test/vm-agent-e2e.ts, pull;
 * test/vm-push-agent-e2e.ts, push): the harness paths and skip checks, the guest's run.sh and
 * side channel, the boot, the wait for registration, policies from the guest's own logs, the
 * tamper step and the report at the end.
 * @module
 */
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { MAIN_TS, spawnCollect, type ChildRun, type Ports } from './control-plane-process.ts'
import { untilValue } from './until.ts'

const ROOT = resolve(import.meta.dir, '../..')
/** The harness (/work/shared/vm) and its cache. */
export const VM = process.env.VMH_DIR ?? '/work/shared/vm'
export const CACHE = process.env.VMH_CACHE ?? '/tmp/vmharness'
/** The compiled agent copied into the guest. */
export const AGENT_BIN = process.env.AGENT_BIN ?? join(ROOT, 'dist/keylime-agent')
export const UUID = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
/** Verifier quote_interval (s), the upstream default. */
export const QUOTE_INTERVAL = 2
/** The executable the guest runs after enrolment (ramfs, so IMA measures it). */
export const UNAPPROVED = '/root/unapproved.sh'

/** A logger with the test's tag. */
export const sayAs = (tag: string) => (msg: string) => console.log(`[${tag}] ${msg}`)

/** Exits 77 (skip) when QEMU, the harness cache or the agent binary is missing. */
export function skipUnlessVm(say: (m: string) => void): void {
  const skip = (why: string): never => {
    say(`SKIP: ${why}`)
    process.exit(77)
  }
  if (Bun.which('qemu-system-x86_64') === null) skip('qemu-system-x86_64 is not installed')
  if (!existsSync(join(CACHE, 'guest', 'vmlinuz'))) skip(`no harness cache in ${CACHE}`)
  if (!existsSync(AGENT_BIN)) skip(`${AGENT_BIN} missing (run scripts/build-agent.sh)`)
}

/** Runs `keylime <args>` from source as an operator would; returns exit code and output. */
export async function keylime(args: string[], env: Record<string, string>) {
  const p = spawnCollect([process.execPath, MAIN_TS, ...args], env)
  const code = await p.proc.exited
  await Bun.sleep(50)
  return { code, out: p.output() }
}

/**
 * The guest's side channel on the host: run.sh polls `/step`, reports `/done`; the verifier
 * posts revocation notices to `/webhook`.
 */
export function startSideChannel() {
  const state = { step: 'wait' as 'wait' | 'go', doneAt: undefined as number | undefined }
  const notices: string[] = []
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname
      if (path === '/step') return new Response(state.step)
      if (path === '/done') {
        state.doneAt ??= performance.now()
        return new Response('ok')
      }
      if (path === '/webhook' && req.method === 'POST') {
        notices.push(await req.text())
        return new Response(null, { status: 200 })
      }
      return new Response(null, { status: 404 })
    },
  })
  return {
    port: server.port as number,
    /** The URL the guest reaches it at. */
    guestUrl: `http://10.0.2.2:${server.port}`,
    webhookUrl: `http://127.0.0.1:${server.port}/webhook`,
    notices,
    /** Tells the guest to run {@link UNAPPROVED}; resolves with the time it reported the run. */
    async tamper(): Promise<number> {
      state.step = 'go'
      return untilValue(async () => state.doneAt, 30_000, `the guest to run ${UNAPPROVED}`, 100)
    },
    stop: () => server.stop(true),
  }
}

/** Verifier settings of both tests: quote_interval, the `example` MB policy, webhook notices. */
export function vmVerifierEnv(env: Record<string, string>, webhookUrl: string): void {
  env.KEYLIME_VERIFIER_QUOTE_INTERVAL = String(QUOTE_INTERVAL)
  env.KEYLIME_VERIFIER_MEASURED_BOOT_POLICY_NAME = 'example'
  env.KEYLIME_VERIFIER_REVOCATIONS_ENABLED_REVOCATION_NOTIFICATIONS = "['agent', 'webhook']"
  env.KEYLIME_VERIFIER_REVOCATIONS_WEBHOOK_URL = webhookUrl
}

/** The tenant's environment: the harness' EK CA chain (swtpm-localca root + intermediate). */
export function vmTenantEnv(env: Record<string, string>, work: string): Record<string, string> {
  const certStore = join(work, 'tpm_cert_store')
  mkdirSync(certStore)
  for (const f of ['swtpm-localca-rootca-cert.pem', 'issuercert.pem']) {
    cpSync(join(CACHE, 'tpm', 'ca', f), join(certStore, f))
  }
  return {
    ...env,
    KEYLIME_TENANT_TPM_CERT_STORE: certStore,
    KEYLIME_TENANT_MAX_RETRIES: '60',
    KEYLIME_TENANT_RETRY_INTERVAL: '1',
    KEYLIME_TENANT_EXPONENTIAL_BACKOFF: 'False',
    KEYLIME_TENANT_REQUEST_TIMEOUT: '60',
  }
}

/**
 * The guest's run.sh: starts the agent on /host/agent.conf, then loops (15 min): reports RSS,
 * and on the side channel's `go` writes and runs {@link UNAPPROVED}. With `dumpLogsAfter`, it
 * copies the IMA list and UEFI log to /host (ima.txt, uefi.bin) once agent.log shows that line
 * (push mode: the host cannot ask the agent for them; the line must come after the agent's last
 * measured file read, e.g. the verifier CA).
 */
export function guestRunScript(sideUrl: string, dumpLogsAfter?: string): string {
  const dump =
    dumpLogsAfter === undefined
      ? []
      : [
          `  if [ ! -e /host/ima.txt ] && grep -q '${dumpLogsAfter}' /host/agent.log; then`,
          '    cat /sys/kernel/security/tpm0/binary_bios_measurements > /host/uefi.bin',
          '    cat /sys/kernel/security/ima/ascii_runtime_measurements > /host/ima.tmp',
          '    sync; mv /host/ima.tmp /host/ima.txt',
          '  fi',
        ]
  return [
    'mkdir -p /var/lib/keylime/tmp',
    // the unapproved script calls id(1), which reads /etc/passwd and /etc/group (measured: root
    // reads them): read them once now, before the IMA list for the policy is taken
    'id > /dev/null',
    'echo "guest: $(uname -r), TPM $(cat /sys/class/tpm/tpm0/tpm_version_major), $(wc -l < /sys/kernel/security/ima/ascii_runtime_measurements) IMA entries"',
    'TMPDIR=/var/lib/keylime/tmp KEYLIME_AGENT_CONFIG=/host/agent.conf /host/keylime-agent > /host/agent.log 2>&1 &',
    'pid=$!',
    'i=0; ran=0',
    'while [ $i -lt 900 ]; do',
    '  if ! kill -0 $pid 2>/dev/null; then echo "agent exited"; wait $pid; exit $?; fi',
    '  if [ $((i % 10)) = 5 ]; then echo "guest: agent RSS $(grep VmRSS /proc/$pid/status)"; fi',
    ...dump,
    // the same busybox applets run from the start, so they are in the IMA list the policy
    // is made from; only the unapproved script is new
    `  if [ $ran = 0 ] && [ "$(timeout 5 wget -q -O - ${sideUrl}/step 2>/dev/null)" = go ]; then`,
    `    printf '#!/bin/sh\\necho "unapproved executable ran as uid $(id -u)"\\n' > ${UNAPPROVED}`,
    `    chmod 0755 ${UNAPPROVED}`,
    `    ${UNAPPROVED} > /host/unapproved.out`,
    `    timeout 5 wget -q -O - ${sideUrl}/done > /dev/null 2>&1`,
    '    echo "guest: $(cat /host/unapproved.out)"',
    '    ran=1',
    '  fi',
    // 9p cache=loose: sync flushes agent.log to the host
    '  sync; sleep 1; i=$((i + 1))',
    'done',
    '',
  ].join('\n')
}

/** Boots the guest with `share` as /host (and host→guest port forwards, `host:guest`). */
export function bootGuest(share: string, fwd?: string): ChildRun {
  return spawnCollect(
    [
      join(VM, 'boot.sh'),
      '--share',
      share,
      ...(fwd === undefined ? [] : ['--fwd', fwd]),
      '--timeout',
      '900',
    ],
    { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', VMH_CACHE: CACHE },
  )
}

/** Waits (5 min, boot included) for the guest's agent at the registrar; its record. */
export function waitRegistered(ports: Ports, tls: object): Promise<Record<string, string>> {
  return untilValue(
    async () => {
      const res = await fetch(`https://127.0.0.1:${ports.registrarTls}/v2.6/agents/${UUID}`, {
        tls,
      } as RequestInit)
      return res.status === 200
        ? ((await res.json()) as { results: Record<string, string> }).results
        : undefined
    },
    300_000,
    'registration from the guest',
    500,
  )
}

/**
 * A runtime policy from the guest's IMA list (`keylime policy create runtime`, excluding the
 * agent's secure directory) and a refstate from its UEFI log (`keylime policy create
 * measured-boot -i`: no Secure Boot in the guest), written under `work`.
 */
export async function policiesFromGuestLogs(
  work: string,
  ima: string,
  mb: Uint8Array,
  env: Record<string, string>,
  say: (m: string) => void,
): Promise<{ policy: string; refstate: string }> {
  writeFileSync(join(work, 'ascii_runtime_measurements'), ima)
  writeFileSync(join(work, 'binary_bios_measurements'), mb)
  // payloads land on the agent's secure tmpfs (not measured); were it a plain directory
  // (agent not root), its files would be measured as they are opened: exclude it
  writeFileSync(join(work, 'excludes.txt'), '/var/lib/keylime/secure/.*\n')
  const policy = join(work, 'policy.json')
  const refstate = join(work, 'refstate.json')
  const pol = await keylime(
    [
      'policy',
      'create',
      'runtime',
      '-m',
      join(work, 'ascii_runtime_measurements'),
      '-e',
      join(work, 'excludes.txt'),
      '-o',
      policy,
    ],
    env,
  )
  if (pol.code !== 0) throw new Error(`policy create runtime: ${pol.out}`)
  const refs = await keylime(
    [
      'policy',
      'create',
      'measured-boot',
      '-e',
      join(work, 'binary_bios_measurements'),
      '-i',
      '-o',
      refstate,
    ],
    env,
  )
  if (refs.code !== 0) throw new Error(`policy create measured-boot: ${refs.out}`)
  const digests = (JSON.parse(readFileSync(policy, 'utf8')) as { digests: object }).digests
  say(
    `runtime policy: ${Object.keys(digests).length} paths from the guest's IMA list; refstate: ${Object.keys(JSON.parse(readFileSync(refstate, 'utf8')) as object).join(', ')}`,
  )
  return { policy, refstate }
}

/** Reads a `GET /v2.6/agents/<uuid>` status from the verifier. */
export async function verifierStatus(port: number, tls: object): Promise<Record<string, unknown>> {
  const r = await fetch(`https://127.0.0.1:${port}/v2.6/agents/${UUID}`, { tls } as RequestInit)
  return ((await r.json()) as { results: Record<string, unknown> }).results
}

/** The webhook notice naming {@link UNAPPROVED}, and its parsed `msg`. */
export async function noticeNamingUnapproved(notices: string[]) {
  const notice = await untilValue(
    async () => notices.find((n) => n.includes(UNAPPROVED)),
    30_000,
    'a revocation notice naming the path',
    100,
  )
  return JSON.parse(String((JSON.parse(notice) as { msg: string }).msg)) as Record<string, string>
}

/** After a failure: the last status, notices, the tails of the VM's and verifier's output. */
export function reportFailure(
  say: (m: string) => void,
  err: unknown,
  lastStatus: object | undefined,
  notices: string[],
  vm: ChildRun | undefined,
  cp: ChildRun,
): void {
  say(`FAIL: ${err instanceof Error ? err.message : String(err)}`)
  if (lastStatus !== undefined) say(`last verifier status: ${JSON.stringify(lastStatus)}`)
  for (const n of notices.slice(-3)) say(`revocation notice: ${n.slice(0, 2000)}`)
  if (vm) console.log(vm.output().split('\n').slice(-40).join('\n'))
  console.log(
    cp
      .output()
      .split('\n')
      .filter((l) => /WARN|ERROR/.test(l))
      .slice(-20)
      .join('\n'),
  )
}

/** Stops the guest, prints its harness lines and the agent's log, removes the share. */
export async function stopGuest(
  say: (m: string) => void,
  vm: ChildRun | undefined,
  share: string | undefined,
): Promise<void> {
  if (vm) {
    vm.proc.kill('SIGTERM')
    await vm.proc.exited
    for (const l of vm.output().split('\n')) {
      if (l.startsWith('[vmh]') || l.includes('guest:')) console.log(l)
    }
  }
  if (share === undefined) return
  if (existsSync(join(share, 'agent.log'))) {
    say('agent log (guest):')
    for (const line of readFileSync(join(share, 'agent.log'), 'utf8').trim().split('\n')) {
      console.log(`  ${line}`)
    }
  }
  rmSync(share, { recursive: true, force: true })
}

/** A share for the guest's /host: the agent binary and the verifier's CA (cacert.crt). */
export function prepareShare(keylimeDir: string): string {
  const share = mkdtempSync(join(tmpdir(), 'kl-vm-agent-'))
  cpSync(AGENT_BIN, join(share, 'keylime-agent'))
  chmodSync(join(share, 'keylime-agent'), 0o755)
  writeFileSync(join(share, 'cacert.crt'), readFileSync(join(keylimeDir, 'cv_ca', 'cacert.crt')))
  return share
}

/** Checks the guest's logs before policies are made of them. */
export function checkGuestLogs(ima: string, mb: Uint8Array): void {
  if (!Buffer.from(mb).subarray(32, 48).toString('latin1').startsWith('Spec ID Event03')) {
    throw new Error('the UEFI log is not crypto-agile')
  }
  if (!ima.startsWith('10 ') || !ima.includes('boot_aggregate')) throw new Error('no IMA list')
  if (!ima.includes('/host/keylime-agent')) throw new Error('IMA did not measure the agent binary')
  if (ima.includes(UNAPPROVED)) throw new Error(`${UNAPPROVED} is measured before it ran`)
}

/**
 * Waits for a first PASS, then for three more attestations while it stays PASS; the two
 * statuses, when the first PASS was seen (`performance.now()`) and the mean period (ms).
 */
export async function waitPassRising(status: () => Promise<Record<string, unknown>>) {
  const first = await untilValue(
    async () => {
      const s = await status()
      return s.attestation_status === 'PASS' && Number(s.attestation_count) >= 1 ? s : undefined
    },
    120_000,
    'first passed attestation',
    250,
  )
  const tFirst = performance.now()
  const later = await untilValue(
    async () => {
      const s = await status()
      if (s.attestation_status !== 'PASS') return s
      return Number(s.attestation_count) >= Number(first.attestation_count) + 3 ? s : undefined
    },
    120_000,
    'attestation_count rising',
    100,
  )
  const rounds = Number(later.attestation_count) - Number(first.attestation_count)
  if (later.attestation_status !== 'PASS') throw new Error('attestation did not stay PASS')
  return { first, later, firstAt: tFirst, period: (performance.now() - tFirst) / rounds }
}

/**
 * Has the guest run {@link UNAPPROVED} (`tamper`, resolving when the guest reports it) and waits
 * for the verifier to stop passing the agent: that status and the delay after the guest's report
 * (ms).
 */
export async function tamperAndWaitFail(
  tamper: () => Promise<number>,
  status: () => Promise<Record<string, unknown>>,
) {
  const doneAt = await tamper()
  const failed = await untilValue(
    async () => {
      const s = await status()
      return s.attestation_status !== 'PASS' ? s : undefined
    },
    60_000,
    'the verifier to fail the agent',
    100,
  )
  return { failed, delay: performance.now() - doneAt }
}
