/**
 * Step 8 in the QEMU guest (/work/shared/vm): dist/keylime-agent runs in the guest on the
 * kernel's /dev/tpmrm0 (through the embedded tpm_device addon), with the real UEFI event log and
 * IMA list, and registers with our control plane on the host (guest → 10.0.2.2). The host:
 *
 * 1. checks an integrity quote over the forwarded port (signature, nonce, PCR16 NK binding, PCR0
 *    equal to the harness' deterministic value, UEFI log and IMA list present);
 * 2. builds a runtime policy from the guest's own IMA list and a refstate from its own UEFI log
 *    as the agent serves them (`keylime policy create runtime -m …`, `keylime policy create
 *    measured-boot -e … -i`: no Secure Boot in the guest), taken after the agent and run.sh's
 *    helpers (busybox applets, wget, id) have run, with an exclude for the agent's secure
 *    directory;
 * 3. enrols the agent with our tenant as an operator would (`keylime tenant -c add -t 127.0.0.1
 *    -tp <forwarded port> --runtime-policy --mb-policy -f payload.zip --verify`, EK certificate
 *    checked against the harness' swtpm-localca chain), the verifier running the `example`
 *    measured-boot policy;
 * 4. waits for attestation PASS with attestation_count rising and the payload's autorun.sh;
 * 5. tells the guest (over HTTP: 9p cache=loose hides host-side writes) to write and run
 *    /root/unapproved.sh (ramfs: measured by the tcb policy), and asserts the verifier moves the
 *    agent to INVALID_QUOTE with `ima.validation.ima-ng.not_in_allowlist` naming that path (read
 *    from the verifier's revocation webhook) within one attestation period (quote_interval plus
 *    one round) of the guest reporting the run.
 *
 * Run with test/vm-agent-e2e.sh (builds the agent first). Exits 0 on success, 77 when QEMU or
 * the harness cache is missing (skip), 1 on failure.
 *
 * @module
 */
import 'reflect-metadata'
import {
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
import { zipSync } from 'fflate'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import { checkNkBinding } from '../src/tpm/extend-pcr.ts'
import { parseTpm2bPublic } from '../src/tpm/public-area.ts'
import { verifyQuote } from '../src/tpm/verify-quote.ts'
import { untilValue } from './support/until.ts'
import {
  controlPlaneEnv,
  freePort,
  MAIN_TS,
  spawnCollect,
} from './support/control-plane-process.ts'

const ROOT = resolve(import.meta.dir, '..')
const VM = process.env.VMH_DIR ?? '/work/shared/vm'
const CACHE = process.env.VMH_CACHE ?? '/tmp/vmharness'
const AGENT_BIN = process.env.AGENT_BIN ?? join(ROOT, 'dist/keylime-agent')
const UUID = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
/** PCR0 (sha256) of every boot of the harness guest (vm/README.md "Deterministic values"). */
const PCR0 = '3e695b1035f9b7fa5ade7430fc93730efab93bcb6c0a843cdab260323f7734c4'
/** Verifier quote_interval (s), the upstream default. */
const QUOTE_INTERVAL = 2
/** The executable the guest runs after enrolment (ramfs, so IMA measures it). */
const UNAPPROVED = '/root/unapproved.sh'

const say = (msg: string) => console.log(`[vm-agent-e2e] ${msg}`)
function skip(why: string): never {
  say(`SKIP: ${why}`)
  process.exit(77)
}
if (Bun.which('qemu-system-x86_64') === null) skip('qemu-system-x86_64 is not installed')
if (!existsSync(join(CACHE, 'guest', 'vmlinuz'))) skip(`no harness cache in ${CACHE}`)
if (!existsSync(AGENT_BIN)) skip(`${AGENT_BIN} missing (run scripts/build-agent.sh)`)

/** Runs `keylime <args>` from source as an operator would; returns exit code and output. */
async function keylime(args: string[], env: Record<string, string>) {
  const p = spawnCollect([process.execPath, MAIN_TS, ...args], env)
  const code = await p.proc.exited
  await Bun.sleep(50)
  return { code, out: p.output() }
}

// the guest's side channel: run.sh polls /step, reports /done; the verifier posts revocation
// notices to /webhook
let step: 'wait' | 'go' = 'wait'
let doneAt: number | undefined
const notices: string[] = []
const side = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    const path = new URL(req.url).pathname
    if (path === '/step') return new Response(step)
    if (path === '/done') {
      doneAt ??= performance.now()
      return new Response('ok')
    }
    if (path === '/webhook' && req.method === 'POST') {
      notices.push(await req.text())
      return new Response(null, { status: 200 })
    }
    return new Response(null, { status: 404 })
  },
})

const work = mkdtempSync(join(tmpdir(), 'kl-vm-host-'))
const { env, ports, dir } = await controlPlaneEnv()
env.KEYLIME_VERIFIER_QUOTE_INTERVAL = String(QUOTE_INTERVAL)
env.KEYLIME_VERIFIER_MEASURED_BOOT_POLICY_NAME = 'example'
env.KEYLIME_VERIFIER_REVOCATIONS_ENABLED_REVOCATION_NOTIFICATIONS = "['agent', 'webhook']"
env.KEYLIME_VERIFIER_REVOCATIONS_WEBHOOK_URL = `http://127.0.0.1:${side.port}/webhook`
// the tenant trusts the harness' EK CA chain (swtpm-localca root + intermediate)
const certStore = join(work, 'tpm_cert_store')
mkdirSync(certStore)
for (const f of ['swtpm-localca-rootca-cert.pem', 'issuercert.pem']) {
  cpSync(join(CACHE, 'tpm', 'ca', f), join(certStore, f))
}
const tenantEnv = {
  ...env,
  KEYLIME_TENANT_TPM_CERT_STORE: certStore,
  KEYLIME_TENANT_MAX_RETRIES: '60',
  KEYLIME_TENANT_RETRY_INTERVAL: '1',
  KEYLIME_TENANT_EXPONENTIAL_BACKOFF: 'False',
  KEYLIME_TENANT_REQUEST_TIMEOUT: '60',
}
const cp = spawnCollect([process.execPath, MAIN_TS], env)
let vm: ReturnType<typeof spawnCollect> | undefined
let ok = false
let shareDir: string | undefined
let lastStatus: Record<string, unknown> | undefined
try {
  await cp.waitFor(/keylime control plane started/, 60_000)
  say(`control plane up: registrar :${ports.registrar}, verifier :${ports.verifier}`)
  const client = (await loadCaDir(join(dir, 'cv_ca'))).client
  const share = mkdtempSync(join(tmpdir(), 'kl-vm-agent-'))
  shareDir = share
  const hostPort = await freePort()
  Bun.spawnSync(['cp', AGENT_BIN, join(share, 'keylime-agent')])
  writeFileSync(join(share, 'cacert.crt'), readFileSync(join(dir, 'cv_ca', 'cacert.crt')))
  writeFileSync(
    join(share, 'agent.conf'),
    `[agent]\nuuid = "${UUID}"\nip = "0.0.0.0"\nport = 9002\ncontact_ip = "127.0.0.1"\ncontact_port = ${hostPort}\nregistrar_ip = "10.0.2.2"\nregistrar_port = ${ports.registrar}\ntrusted_client_ca = "/host/cacert.crt"\nkeylime_dir = "/var/lib/keylime"\n`,
  )
  const sideUrl = `http://10.0.2.2:${side.port}`
  writeFileSync(
    join(share, 'run.sh'),
    [
      'mkdir -p /var/lib/keylime/tmp',
      // the payload's autorun.sh and the unapproved script call id(1), which reads /etc/passwd
      // and /etc/group (measured: root reads them): read them once now, before the host takes
      // the IMA list for the policy (a first run showed /etc/passwd as not_in_allowlist)
      'id > /dev/null',
      'echo "guest: $(uname -r), TPM $(cat /sys/class/tpm/tpm0/tpm_version_major), $(wc -l < /sys/kernel/security/ima/ascii_runtime_measurements) IMA entries"',
      'TMPDIR=/var/lib/keylime/tmp KEYLIME_AGENT_CONFIG=/host/agent.conf /host/keylime-agent > /host/agent.log 2>&1 &',
      'pid=$!',
      'i=0; ran=0',
      'while [ $i -lt 900 ]; do',
      '  if ! kill -0 $pid 2>/dev/null; then echo "agent exited"; wait $pid; exit $?; fi',
      '  if [ $((i % 10)) = 5 ]; then echo "guest: agent RSS $(grep VmRSS /proc/$pid/status)"; fi',
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
    ].join('\n'),
  )
  vm = spawnCollect(
    [join(VM, 'boot.sh'), '--share', share, '--fwd', `${hostPort}:9002`, '--timeout', '900'],
    { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', VMH_CACHE: CACHE },
  )
  const t0 = Date.now()
  const tls = { ...client, checkServerIdentity: () => undefined }
  const reg = await untilValue(
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
  say(`registered from the guest after ${Math.round((Date.now() - t0) / 1000)} s (incl. boot)`)
  const agentTls = { ...client, ca: String(reg.mtls_cert), checkServerIdentity: () => undefined }
  const agentUrl = `https://127.0.0.1:${hostPort}`

  // an integrity quote over PCR 0 and 10 from the real TPM, with the real logs; a few run.sh
  // loop turns first, so its applets are measured before the list is taken
  await Bun.sleep(3000)
  const nonce = 'VmNonce0123456789'
  const res = await fetch(
    `${agentUrl}/v2.6/quotes/integrity?nonce=${nonce}&mask=0x401&partial=0&ima_ml_entry=0`,
    { tls: agentTls } as RequestInit,
  )
  const q = ((await res.json()) as { results: Record<string, unknown> }).results
  const ak = parseTpm2bPublic(Buffer.from(String(reg.aik_tpm), 'base64'))
  const v = verifyQuote({ quote: String(q.quote), akPublic: ak, nonce, hashAlg: 'sha256' })
  checkNkBinding(v.pcrs, 'sha256', String(q.pubkey))
  const pcr0 = Buffer.from(v.pcrs.get('sha256')!.get(0)!).toString('hex')
  const mb = Buffer.from(String(q.mb_measurement_list ?? ''), 'base64')
  const ima = String(q.ima_measurement_list ?? '')
  say(
    `quote verified: sign_alg ${q.sign_alg}, PCRs ${v.pcrSelection[0]!.pcrs.join(',')}, PCR0 ${pcr0.slice(0, 16)}…`,
  )
  say(
    `UEFI log ${mb.byteLength} bytes, IMA list ${ima.split('\n').length - 1} lines, boottime ${q.boottime}`,
  )
  if (pcr0 !== PCR0) throw new Error(`PCR0 ${pcr0} is not the harness' ${PCR0}`)
  if (!mb.subarray(32, 48).toString('latin1').startsWith('Spec ID Event03')) {
    throw new Error('mb_measurement_list is not a crypto-agile UEFI log')
  }
  if (!ima.startsWith('10 ') || !ima.includes('boot_aggregate')) throw new Error('no IMA list')
  if (!ima.includes('/host/keylime-agent')) throw new Error('IMA did not measure the agent binary')
  if (ima.includes(UNAPPROVED)) throw new Error(`${UNAPPROVED} is measured before it ran`)

  // policies from the guest's own logs, with our tools
  writeFileSync(join(work, 'ascii_runtime_measurements'), ima)
  writeFileSync(join(work, 'binary_bios_measurements'), mb)
  // payloads land on the agent's secure tmpfs (not measured); were it a plain directory
  // (agent not root), its files would be measured as they are opened: exclude it
  writeFileSync(join(work, 'excludes.txt'), '/var/lib/keylime/secure/.*\n')
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
      join(work, 'policy.json'),
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
      join(work, 'refstate.json'),
    ],
    env,
  )
  if (refs.code !== 0) throw new Error(`policy create measured-boot: ${refs.out}`)
  const policy = JSON.parse(readFileSync(join(work, 'policy.json'), 'utf8')) as {
    digests: Record<string, string[]>
  }
  say(
    `runtime policy: ${Object.keys(policy.digests).length} paths from the guest's IMA list; refstate: ${Object.keys(JSON.parse(readFileSync(join(work, 'refstate.json'), 'utf8')) as object).join(', ')}`,
  )

  // enrolment with our tenant: policies, a zip payload with autorun.sh, --verify
  writeFileSync(
    join(work, 'payload.zip'),
    zipSync({
      'autorun.sh': new TextEncoder().encode(
        '#!/bin/sh\necho "autorun.sh ran in $(pwd) as uid $(id -u)" > /host/autorun.out\nsync\n',
      ),
    }),
  )
  const tAdd = Date.now()
  const add = await keylime(
    [
      'tenant',
      '-c',
      'add',
      '-v',
      '127.0.0.1',
      '-vp',
      String(ports.verifier),
      '-r',
      '127.0.0.1',
      '-rp',
      String(ports.registrarTls),
      '-t',
      '127.0.0.1',
      '-tp',
      String(hostPort),
      '-u',
      UUID,
      '--runtime-policy',
      join(work, 'policy.json'),
      '--mb-policy',
      join(work, 'refstate.json'),
      '-f',
      join(work, 'payload.zip'),
      '--verify',
    ],
    tenantEnv,
  )
  say(`tenant -c add exited ${add.code} after ${((Date.now() - tAdd) / 1000).toFixed(1)} s`)
  for (const l of add.out.trim().split('\n').slice(-6)) console.log(`  tenant: ${l}`)
  if (add.code !== 0) throw new Error('tenant -c add failed')

  const status = async () => {
    const r = await fetch(`https://127.0.0.1:${ports.verifier}/v2.6/agents/${UUID}`, {
      tls,
    } as RequestInit)
    lastStatus = ((await r.json()) as { results: Record<string, unknown> }).results
    return lastStatus
  }
  const first = await untilValue(
    async () => {
      const s = await status()
      return Number(s.attestation_count) >= 1 ? s : undefined
    },
    120_000,
    'first attestation',
    500,
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
  const period = (performance.now() - tFirst) / rounds
  say(
    `verifier: attestation_status ${later.attestation_status}, attestation_count ${first.attestation_count} → ${later.attestation_count}, operational_state ${later.operational_state}, one round every ${(period / 1000).toFixed(2)} s (quote_interval ${QUOTE_INTERVAL} s)`,
  )
  if (later.attestation_status !== 'PASS') throw new Error('attestation did not PASS')
  if (later.has_runtime_policy !== 1 || later.has_mb_refstate !== 1) {
    throw new Error('the verifier does not hold the runtime policy and the refstate')
  }
  const autorun = await untilValue(
    async () => {
      const f = join(share, 'autorun.out')
      const text = existsSync(f) ? readFileSync(f, 'utf8').trim() : ''
      return text === '' ? undefined : text
    },
    60_000,
    'autorun.sh in the guest',
    500,
  )
  say(`payload: ${autorun}`)

  // an unapproved executable in the guest: the verifier fails the agent within one period
  step = 'go'
  await untilValue(async () => doneAt, 30_000, `the guest to run ${UNAPPROVED}`, 100)
  const failed = await untilValue(
    async () => {
      const s = await status()
      return s.attestation_status !== 'PASS' ? s : undefined
    },
    60_000,
    'the verifier to fail the agent',
    100,
  )
  const delay = performance.now() - doneAt!
  say(
    `${UNAPPROVED} ran; verifier after ${(delay / 1000).toFixed(2)} s: attestation_status ${failed.attestation_status}, operational_state ${failed.operational_state}, last_event_id ${failed.last_event_id}, severity_level ${failed.severity_level}`,
  )
  const notice = await untilValue(
    async () => notices.find((n) => n.includes(UNAPPROVED)),
    30_000,
    'a revocation notice naming the path',
    100,
  )
  const msg = JSON.parse(String((JSON.parse(notice) as { msg: string }).msg)) as Record<
    string,
    string
  >
  say(`revocation notice (webhook): event_id ${msg.event_id}, context ${msg.context}`)
  if (failed.operational_state !== 9) {
    throw new Error(`operational_state ${failed.operational_state}, not INVALID_QUOTE`)
  }
  if (!String(failed.last_event_id).startsWith('ima.validation.')) {
    throw new Error(`last_event_id ${failed.last_event_id} is not an IMA validation failure`)
  }
  // worst case: the run lands just after a round read the list: that round's remainder, the
  // interval, then one more round
  const bound = QUOTE_INTERVAL * 1000 + 2 * Math.max(period - QUOTE_INTERVAL * 1000, 0) + 1000
  if (delay > bound) {
    throw new Error(`failed after ${Math.round(delay)} ms, more than ${Math.round(bound)} ms`)
  }
  ok = true
} catch (err) {
  say(`FAIL: ${err instanceof Error ? err.message : String(err)}`)
  if (lastStatus !== undefined) say(`last verifier status: ${JSON.stringify(lastStatus)}`)
  for (const n of notices) say(`revocation notice: ${n.slice(0, 2000)}`)
  if (vm) console.log(vm.output().split('\n').slice(-40).join('\n'))
  console.log(
    cp
      .output()
      .split('\n')
      .filter((l) => /WARN|ERROR/.test(l))
      .slice(-20)
      .join('\n'),
  )
} finally {
  if (vm) {
    vm.proc.kill('SIGTERM')
    await vm.proc.exited
    const vmh = vm
      .output()
      .split('\n')
      .filter((l) => l.startsWith('[vmh]') || l.includes('guest:'))
    for (const l of vmh) console.log(l)
  }
  if (shareDir !== undefined && existsSync(join(shareDir, 'agent.log'))) {
    say('agent log (guest):')
    for (const line of readFileSync(join(shareDir, 'agent.log'), 'utf8').trim().split('\n')) {
      console.log(`  ${line}`)
    }
  }
  if (shareDir !== undefined) rmSync(shareDir, { recursive: true, force: true })
  rmSync(work, { recursive: true, force: true })
  side.stop(true)
  await cp.stop()
}
say(ok ? 'PASS' : 'FAIL')
process.exit(ok ? 0 : 1)
