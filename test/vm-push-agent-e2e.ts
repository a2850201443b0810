/**
 * Push mode in the QEMU guest (/work/shared/vm): dist/keylime-agent runs in the guest with
 * `mode = "push"` on the kernel's /dev/tpmrm0, with the real UEFI event log and IMA list, and
 * attests to our control plane on the host (guest → 10.0.2.2; no port into the guest). The host:
 *
 * 1. waits for the agent's registration (no mTLS certificate);
 * 2. builds a runtime policy from the guest's own IMA list and a refstate from its own UEFI log
 *    (copied to the share by run.sh once the agent and its helpers have run), as the pull test;
 * 3. enrols the agent with our tenant: `keylime tenant -c add --push-model --runtime-policy
 *    --mb-policy` (EK certificate checked against the harness' swtpm-localca chain), the
 *    verifier running the `example` measured-boot policy;
 * 4. waits for `attestation_status: PASS` with attestation_count rising (TPM2_Certify proof of
 *    possession, then quote + uefi_log + ima_log pushed);
 * 5. has the guest run /root/unapproved.sh and asserts `FAIL`, with the webhook notice naming
 *    the path under `ima.validation.ima-ng.not_in_allowlist`.
 *
 * Run with `test/vm-agent-e2e.sh --push`. Exits 0 on success, 77 to skip, 1 on failure.
 *
 * @module
 */
import 'reflect-metadata'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { controlPlaneEnv, MAIN_TS, spawnCollect } from './support/control-plane-process.ts'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import { untilValue } from './support/until.ts'
import {
  bootGuest,
  guestRunScript,
  keylime,
  noticeNamingUnapproved,
  policiesFromGuestLogs,
  QUOTE_INTERVAL,
  reportFailure,
  sayAs,
  skipUnlessVm,
  startSideChannel,
  stopGuest,
  tamperAndWaitFail,
  UNAPPROVED,
  UUID,
  verifierStatus,
  vmTenantEnv,
  vmVerifierEnv,
  waitRegistered,
  checkGuestLogs,
  prepareShare,
  waitPassRising,
} from './support/vm-guest.ts'

const say = sayAs('vm-push-agent-e2e')
skipUnlessVm(say)

const side = startSideChannel()
const work = mkdtempSync(join(tmpdir(), 'kl-vm-host-'))
const { env, ports, dir } = await controlPlaneEnv()
vmVerifierEnv(env, side.webhookUrl)
// the guest reaches the verifier at 10.0.2.2 (QEMU user networking): a SAN of its certificate
env.KEYLIME_VERIFIER_CERT_SUBJECT_ALTERNATIVE_NAMES = '10.0.2.2'
const tenantEnv = vmTenantEnv(env, work)
const cp = spawnCollect([process.execPath, MAIN_TS], env)
let vm: ReturnType<typeof spawnCollect> | undefined
let ok = false
let share: string | undefined
let lastStatus: Record<string, unknown> | undefined
try {
  await cp.waitFor(/keylime control plane started/, 60_000)
  say(`control plane up: registrar :${ports.registrar}, verifier :${ports.verifier}`)
  const client = (await loadCaDir(join(dir, 'cv_ca'))).client
  const tls = { ...client, checkServerIdentity: () => undefined }
  share = prepareShare(dir)
  const shareDir = share
  writeFileSync(
    join(share, 'agent.conf'),
    [
      '[agent]',
      'mode = "push"',
      `uuid = "${UUID}"`,
      `verifier_url = "https://10.0.2.2:${ports.verifier}"`,
      'verifier_tls_ca_cert = "/host/cacert.crt"',
      // before enrolment the proof of possession fails: retry soon
      `attestation_interval_seconds = ${QUOTE_INTERVAL}`,
      'registrar_ip = "10.0.2.2"',
      `registrar_port = ${ports.registrar}`,
      'keylime_dir = "/var/lib/keylime"',
      '',
    ].join('\n'),
  )
  // the logs are copied once the agent has read its files (the verifier CA, measured: root
  // reads it) and started attesting
  writeFileSync(join(share, 'run.sh'), guestRunScript(side.guestUrl, 'push mode: attesting'))
  vm = bootGuest(share)
  const t0 = Date.now()
  const reg = await waitRegistered(ports, tls)
  say(
    `registered from the guest after ${Math.round((Date.now() - t0) / 1000)} s (incl. boot), mtls_cert ${reg.mtls_cert ?? 'none'}`,
  )

  const imaPath = join(shareDir, 'ima.txt')
  await untilValue(async () => existsSync(imaPath) || undefined, 60_000, 'the guest logs', 500)
  const ima = readFileSync(imaPath, 'utf8')
  const mb = readFileSync(join(shareDir, 'uefi.bin'))
  say(`UEFI log ${mb.byteLength} bytes, IMA list ${ima.split('\n').length - 1} lines`)
  checkGuestLogs(ima, mb)
  const { policy, refstate } = await policiesFromGuestLogs(work, ima, mb, env, say)

  const tAdd = performance.now()
  const add = await keylime(
    [
      'tenant',
      '-c',
      'add',
      '--push-model',
      '-v',
      '127.0.0.1',
      '-vp',
      String(ports.verifier),
      '-r',
      '127.0.0.1',
      '-rp',
      String(ports.registrarTls),
      '-u',
      UUID,
      '--runtime-policy',
      policy,
      '--mb-policy',
      refstate,
    ],
    tenantEnv,
  )
  say(
    `tenant -c add --push-model exited ${add.code} after ${((performance.now() - tAdd) / 1000).toFixed(1)} s`,
  )
  for (const l of add.out.trim().split('\n').slice(-4)) console.log(`  tenant: ${l}`)
  if (add.code !== 0) throw new Error('tenant -c add failed')

  const status = async () => {
    lastStatus = await verifierStatus(ports.verifier, tls)
    return lastStatus
  }
  const { first, later, firstAt, period } = await waitPassRising(status)
  say(`first PASS ${((firstAt - tAdd) / 1000).toFixed(1)} s after the tenant call`)
  say(
    `verifier: attestation_status ${later.attestation_status}, attestation_count ${first.attestation_count} → ${later.attestation_count}, one attestation every ${(period / 1000).toFixed(2)} s (quote_interval ${QUOTE_INTERVAL} s)`,
  )
  if (later.has_runtime_policy !== 1 || later.has_mb_refstate !== 1) {
    throw new Error('the verifier does not hold the runtime policy and the refstate')
  }
  // what the agent pushed: the latest attestation as an admin reads it
  const latest = await (
    await fetch(`https://127.0.0.1:${ports.verifier}/v3.0/agents/${UUID}/attestations/latest`, {
      tls,
    } as RequestInit)
  ).text()
  const kinds = [...new Set([...latest.matchAll(/"evidence_type":\s*"(\w+)"/g)].map((m) => m[1]))]
  const evaluation = /"evaluation":\s*"(\w+)"/.exec(latest)?.[1]
  say(`latest attestation: evidence ${kinds.join(' + ')}, evaluation ${evaluation}`)
  if (['tpm_quote', 'uefi_log', 'ima_log'].some((k) => !kinds.includes(k))) {
    throw new Error('the agent did not push quote, UEFI log and IMA list')
  }

  const { failed, delay } = await tamperAndWaitFail(side.tamper, status)
  say(
    `${UNAPPROVED} ran; verifier after ${(delay / 1000).toFixed(2)} s: attestation_status ${failed.attestation_status}, last_event_id ${failed.last_event_id}`,
  )
  const msg = await noticeNamingUnapproved(side.notices)
  say(`revocation notice (webhook): event_id ${msg.event_id}, context ${msg.context}`)
  if (failed.attestation_status !== 'FAIL') {
    throw new Error(`attestation_status ${failed.attestation_status}, not FAIL`)
  }
  if (msg.event_id !== 'ima.validation.ima-ng.not_in_allowlist') {
    throw new Error(`event_id ${msg.event_id} is not ima.validation.ima-ng.not_in_allowlist`)
  }
  ok = true
} catch (err) {
  reportFailure(say, err, lastStatus, side.notices, vm, cp)
} finally {
  await stopGuest(say, vm, share)
  rmSync(work, { recursive: true, force: true })
  side.stop()
  await cp.stop()
}
say(ok ? 'PASS' : 'FAIL')
process.exit(ok ? 0 : 1)
