/**
 * The agent's device path in the QEMU guest (/work/shared/vm): dist/keylime-agent runs in the
 * guest on the kernel's /dev/tpmrm0 (through the embedded tpm_device addon), with the real UEFI
 * event log and IMA list, and registers with our control plane on the host (guest → 10.0.2.2).
 * The host then checks an integrity quote over the forwarded port (signature, nonce, PCR16 NK
 * binding, PCR0 equal to the harness' deterministic value, UEFI log and IMA list present),
 * enrols the agent with U, V and a payload, waits for attestation PASS with attestation_count
 * rising and for the payload's autorun.sh to have run in the guest, then stops the VM.
 *
 * Run with test/vm-agent-e2e.sh (builds the agent first). Exits 0 on success, 77 when QEMU or
 * the harness cache is missing (skip), 1 on failure.
 *
 * @module
 */
import 'reflect-metadata'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { zipSync } from 'fflate'
import { enrollAgent } from '../bench/fleet/enroll-agent.ts'
import { loadCaDir } from '../bench/fleet/load-ca-dir.ts'
import { checkNkBinding } from '../src/tpm/extend-pcr.ts'
import { parseTpm2bPublic } from '../src/tpm/public-area.ts'
import { verifyQuote } from '../src/tpm/verify-quote.ts'
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

const say = (msg: string) => console.log(`[vm-agent-e2e] ${msg}`)
function skip(why: string): never {
  say(`SKIP: ${why}`)
  process.exit(77)
}
if (Bun.which('qemu-system-x86_64') === null) skip('qemu-system-x86_64 is not installed')
if (!existsSync(join(CACHE, 'guest', 'vmlinuz'))) skip(`no harness cache in ${CACHE}`)
if (!existsSync(AGENT_BIN)) skip(`${AGENT_BIN} missing (run scripts/build-agent.sh)`)

async function until<T>(fn: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(500)
  }
}

const { env, ports, dir } = await controlPlaneEnv()
env.KEYLIME_VERIFIER_QUOTE_INTERVAL = '1'
const cp = spawnCollect([process.execPath, MAIN_TS], env)
let vm: ReturnType<typeof spawnCollect> | undefined
let ok = false
let shareDir: string | undefined
try {
  await cp.waitFor(/keylime control plane started/, 60_000)
  say(`control plane up: registrar :${ports.registrar}, verifier :${ports.verifier}`)
  const client = (await loadCaDir(join(dir, 'cv_ca'))).client
  const share = mkdtempSync(join(tmpdir(), 'kl-vm-agent-'))
  const hostPort = await freePort()
  Bun.spawnSync(['cp', AGENT_BIN, join(share, 'keylime-agent')])
  writeFileSync(join(share, 'cacert.crt'), readFileSync(join(dir, 'cv_ca', 'cacert.crt')))
  writeFileSync(
    join(share, 'agent.conf'),
    `[agent]\nuuid = "${UUID}"\nip = "0.0.0.0"\nport = 9002\ncontact_ip = "127.0.0.1"\ncontact_port = ${hostPort}\nregistrar_ip = "10.0.2.2"\nregistrar_port = ${ports.registrar}\ntrusted_client_ca = "/host/cacert.crt"\nkeylime_dir = "/var/lib/keylime"\n`,
  )
  writeFileSync(
    join(share, 'run.sh'),
    [
      'mkdir -p /var/lib/keylime/tmp',
      'echo "guest: $(uname -r), TPM $(cat /sys/class/tpm/tpm0/tpm_version_major), $(wc -l < /sys/kernel/security/ima/ascii_runtime_measurements) IMA entries"',
      'TMPDIR=/var/lib/keylime/tmp KEYLIME_AGENT_CONFIG=/host/agent.conf /host/keylime-agent > /host/agent.log 2>&1 &',
      'pid=$!',
      'i=0; while [ $i -lt 600 ]; do',
      '  if ! kill -0 $pid 2>/dev/null; then echo "agent exited"; wait $pid; exit $?; fi',
      '  if [ $((i % 10)) = 5 ]; then echo "guest: agent RSS $(grep VmRSS /proc/$pid/status)"; fi',
      // 9p cache=loose: sync flushes agent.log to the host
      '  sync; sleep 1; i=$((i + 1))',
      'done',
      '',
    ].join('\n'),
  )
  vm = spawnCollect(
    [join(VM, 'boot.sh'), '--share', share, '--fwd', `${hostPort}:9002`, '--timeout', '600'],
    { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', VMH_CACHE: CACHE },
  )
  const t0 = Date.now()
  const tls = { ...client, checkServerIdentity: () => undefined }
  const reg = await until(
    async () => {
      const res = await fetch(`https://127.0.0.1:${ports.registrarTls}/v2.6/agents/${UUID}`, {
        tls,
      } as RequestInit)
      return res.status === 200
        ? ((await res.json()) as { results: Record<string, string> }).results
        : undefined
    },
    240_000,
    'registration from the guest',
  )
  say(`registered from the guest after ${Math.round((Date.now() - t0) / 1000)} s (incl. boot)`)
  const agentTls = { ...client, ca: String(reg.mtls_cert), checkServerIdentity: () => undefined }
  const agentUrl = `https://127.0.0.1:${hostPort}`

  // an integrity quote over PCR 0 and 10 from the real TPM, with the real logs
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

  // enrolment with keys and a payload; attestation by our verifier
  const payload = zipSync({
    'autorun.sh': new TextEncoder().encode(
      '#!/bin/sh\necho "autorun.sh ran in $(pwd) as uid $(id -u)" > /host/autorun.out\nsync\n',
    ),
  })
  const enrolled = await enrollAgent({
    verifierUrl: `https://127.0.0.1:${ports.verifier}`,
    tls: client,
    uuid: UUID,
    ip: '127.0.0.1',
    port: hostPort,
    akTpm: String(reg.aik_tpm),
    mtlsCert: String(reg.mtls_cert),
    withKeys: true,
    payload,
    tpmPolicy: JSON.stringify({ mask: '0x0' }),
  })
  const status = async () => {
    const r = await fetch(
      `https://127.0.0.1:${ports.verifier}/v${enrolled.verifierApiVersion}/agents/${UUID}`,
      { tls } as RequestInit,
    )
    return ((await r.json()) as { results: Record<string, unknown> }).results
  }
  const first = await until(
    async () => {
      const s = await status()
      return Number(s.attestation_count) >= 1 ? s : undefined
    },
    120_000,
    'first attestation',
  )
  const later = await until(
    async () => {
      const s = await status()
      return Number(s.attestation_count) > Number(first.attestation_count) + 1 ? s : undefined
    },
    120_000,
    'attestation_count rising',
  )
  say(
    `verifier: attestation_status ${later.attestation_status}, attestation_count ${first.attestation_count} → ${later.attestation_count}, operational_state ${later.operational_state}`,
  )
  if (later.attestation_status !== 'PASS') throw new Error('attestation did not PASS')
  const autorun = await until(
    async () => {
      const f = join(share, 'autorun.out')
      const text = existsSync(f) ? readFileSync(f, 'utf8').trim() : ''
      return text === '' ? undefined : text
    },
    60_000,
    'autorun.sh in the guest',
  )
  say(`payload: ${autorun}`)
  ok = true
  shareDir = share
} catch (err) {
  say(`FAIL: ${err instanceof Error ? err.message : String(err)}`)
  if (vm) console.log(vm.output().split('\n').slice(-40).join('\n'))
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
  await cp.stop()
}
say(ok ? 'PASS' : 'FAIL')
process.exit(ok ? 0 : 1)
