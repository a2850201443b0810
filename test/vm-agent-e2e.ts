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
 * Run with test/vm-agent-e2e.sh (builds the agent first; `--push`: the push-mode sibling). Exits 0 on success, 77 when QEMU or
 * the harness cache is missing (skip), 1 on failure.
 *
 * @module
 */
import 'reflect-metadata'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { zipSync } from 'fflate'
import { checkNkBinding } from '../src/tpm/extend-pcr.ts'
import { parseTpm2bPublic } from '../src/tpm/public-area.ts'
import { verifyQuote } from '../src/tpm/verify-quote.ts'
import {
  controlPlaneEnv,
  freePort,
  MAIN_TS,
  spawnCollect,
} from './support/control-plane-process.ts'
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

/** PCR0 (sha256) of every boot of the harness guest (vm/README.md "Deterministic values"). */
const PCR0 = '3e695b1035f9b7fa5ade7430fc93730efab93bcb6c0a843cdab260323f7734c4'

const say = sayAs('vm-agent-e2e')
skipUnlessVm(say)

const side = startSideChannel()
const work = mkdtempSync(join(tmpdir(), 'kl-vm-host-'))
const { env, ports, dir } = await controlPlaneEnv()
vmVerifierEnv(env, side.webhookUrl)
const tenantEnv = vmTenantEnv(env, work)
const cp = spawnCollect([process.execPath, MAIN_TS], env)
let vm: ReturnType<typeof spawnCollect> | undefined
let ok = false
let shareDir: string | undefined
let lastStatus: Record<string, unknown> | undefined
try {
  await cp.waitFor(/keylime control plane started/, 60_000)
  say(`control plane up: registrar :${ports.registrar}, verifier :${ports.verifier}`)
  const client = (await loadCaDir(join(dir, 'cv_ca'))).client
  const share = prepareShare(dir)
  shareDir = share
  const hostPort = await freePort()
  writeFileSync(
    join(share, 'agent.conf'),
    `[agent]\nuuid = "${UUID}"\nip = "0.0.0.0"\nport = 9002\ncontact_ip = "127.0.0.1"\ncontact_port = ${hostPort}\nregistrar_ip = "10.0.2.2"\nregistrar_port = ${ports.registrar}\ntrusted_client_ca = "/host/cacert.crt"\nkeylime_dir = "/var/lib/keylime"\n`,
  )
  writeFileSync(join(share, 'run.sh'), guestRunScript(side.guestUrl))
  vm = bootGuest(share, `${hostPort}:9002`)
  const t0 = Date.now()
  const tls = { ...client, checkServerIdentity: () => undefined }
  const reg = await waitRegistered(ports, tls)
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
  checkGuestLogs(ima, mb)

  // policies from the guest's own logs, with our tools
  const { policy, refstate } = await policiesFromGuestLogs(work, ima, mb, env, say)

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
      policy,
      '--mb-policy',
      refstate,
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
    lastStatus = await verifierStatus(ports.verifier, tls)
    return lastStatus
  }
  const { first, later, period } = await waitPassRising(status)
  say(
    `verifier: attestation_status ${later.attestation_status}, attestation_count ${first.attestation_count} → ${later.attestation_count}, operational_state ${later.operational_state}, one round every ${(period / 1000).toFixed(2)} s (quote_interval ${QUOTE_INTERVAL} s)`,
  )
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
  const { failed, delay } = await tamperAndWaitFail(side.tamper, status)
  say(
    `${UNAPPROVED} ran; verifier after ${(delay / 1000).toFixed(2)} s: attestation_status ${failed.attestation_status}, operational_state ${failed.operational_state}, last_event_id ${failed.last_event_id}, severity_level ${failed.severity_level}`,
  )
  const msg = await noticeNamingUnapproved(side.notices)
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
  reportFailure(say, err, lastStatus, side.notices, vm, cp)
} finally {
  await stopGuest(say, vm, shareDir)
  rmSync(work, { recursive: true, force: true })
  side.stop()
  await cp.stop()
}
say(ok ? 'PASS' : 'FAIL')
process.exit(ok ? 0 : 1)
