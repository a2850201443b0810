/**
 * Step 6 end to end through the verifier: simulated agents serve the REAL OVMF event log of the
 * QEMU guest (`test/fixtures/mb/vm-plain`: Secure Boot off, kernel via the EFI stub) as
 * `mb_measurement_list`, with PCRs 0–9 of their sha1 and sha256 banks set by replaying it, and are
 * enrolled with a refstate made by our own `keylime policy create measured-boot -i`. Proves, over
 * real mTLS on loopback:
 *
 * - the replayed PCRs equal what the guest's swtpm reported (`pcrs.yaml`), and the agent quotes them;
 * - `measured_boot_policy_name = example` with that refstate → PASS, attestation continues;
 * - a refstate with the kernel digest or the command line (EFI stub LoadOptions) changed →
 *   INVALID_QUOTE, `measured_boot.policy_example`, and the signed notice names the event
 *   (index, PCR and type); a PCR the log does not explain → `measured_boot.invalid_pcr_4`;
 * - a malformed log from the agent → a typed parser failure (`ERR_MB_…` code in the context), not
 *   a verifier exception;
 * - under `accept-all` (the default), a non-empty refstate is still evaluated, by the built-in
 *   `example` policy (upstream #1932 drops it): the genuine boot passes, and each REAL altered boot
 *   of the guest (`vm-tamper-*`: firmware, kernel, initrd, command line, Secure Boot variables;
 *   its own log and PCRs) fails with `measured_boot.policy_example` naming the component's event,
 *   while an empty refstate (`{}`) skips measured boot as upstream; `reject-all` fails every agent.
 *
 * Runs on PGlite and, with TEST_DATABASE_URL, PostgreSQL.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Fleet, startFleet } from './support/fleet/fleet.ts'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import type { SimAgent } from './support/fleet/sim-agent.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { runPolicyCreateMeasuredBoot } from '../src/policy-tools/create-refstate-cli.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { AGENT_STATES } from '../src/protocol/agent-states.ts'
import { createTestCa, startTestVerifier, type TestCa } from './support/verifier-harness.ts'
import { databaseTargets } from './support/databases.ts'
import { until } from './support/until.ts'
import { readMbLog, readMbPcrs } from './fixtures/mb/read-fixture.ts'

const MB = join(import.meta.dir, 'fixtures/mb')
const LOG_PATH = join(MB, 'vm-plain/binary_bios_measurements')
const LOG = readFileSync(LOG_PATH)
const TRUNCATED = readFileSync(join(MB, 'synthetic/truncated.bin'))

/** The guest's `tpm2_pcrread` of the genuine boot, hex. */
async function genuinePcrHex(bank: string, n: number): Promise<string> {
  return Buffer.from((await readMbPcrs('vm-plain')).get(bank)?.get(n) ?? []).toString('hex')
}

/** Real altered boots of the guest, and what the rejection must name. */
const TAMPERS: Array<{ dir: string; names: string[] }> = [
  { dir: 'vm-tamper-firmware', names: ['event 2 (PCR 0 EV_EFI_PLATFORM_FIRMWARE_BLOB)'] },
  {
    dir: 'vm-tamper-kernel',
    names: ['event 10 (PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION)', 'kernel_authcode_sha256'],
  },
  { dir: 'vm-tamper-initrd', names: ['event 22 (PCR 9 EV_EVENT_TAG)', 'initrd_plain_sha256'] },
  { dir: 'vm-tamper-cmdline', names: ['event 21 (PCR 9 EV_EVENT_TAG)', 'load_options_sha256'] },
  {
    dir: 'vm-tamper-sbvars',
    names: ['event 4 (PCR 7 EV_EFI_VARIABLE_DRIVER_CONFIG) SecureBoot is Yes, expected No'],
  },
]

/** The parts of the example refstate the tests edit. */
interface Refstate {
  has_secureboot: boolean
  kernels: Record<string, string>[]
}

/** A revocation notice's `msg` (context is upstream's JSON string). */
interface Notice {
  agent_id: string
  event_id: string
  context: string
}

/** Runs `keylime policy create measured-boot -e <log> -i` as an operator would. */
async function createRefstate(): Promise<Refstate> {
  let out = ''
  let err = ''
  const rc = await runPolicyCreateMeasuredBoot(['-e', LOG_PATH, '-i', '-o', '-'], {
    cwd: mkdtempSync(join(tmpdir(), 'kl-mb-e2e-')),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  })
  if (rc !== 0) throw new Error(`policy create measured-boot failed (${rc}): ${err}`)
  return JSON.parse(out)
}

for (const target of databaseTargets()) {
  describe(`measured boot through the verifier with a real OVMF log (${target.name})`, () => {
    const dbs: KeylimeDatabase[] = []
    let ca: TestCa
    let fleet: Fleet
    const verifiers: Record<string, VerifierHandle> = {}
    let webhook: ReturnType<typeof Bun.serve>
    const notices: Notice[] = []
    let refstate: Refstate
    const [GOOD, KERNEL, CMDLINE, PCR4, MALFORMED, ACCEPT, REJECT, EMPTY] = [0, 1, 2, 3, 4, 5, 6, 7]
    const TAMPERED = TAMPERS.map((_, i) => 8 + i)
    const agent = (i: number) => fleet.agents[i]!
    const owner = new Map<string, VerifierHandle>()
    const rec = (a: SimAgent) => owner.get(a.uuid)?.loop.records.get(a.uuid)
    const count = (a: SimAgent) => rec(a)?.attestationCount ?? 0

    const enrol = async (v: VerifierHandle, a: SimAgent, mbPolicy: unknown) => {
      const res = await v.app.request(`/v2.6/agents/${a.uuid}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          // a V makes a pull agent: an enrolment without one is push mode (docs/push-mode.md)
          v: Buffer.alloc(32, 7).toString('base64'),
          cloudagent_ip: a.contactIp,
          cloudagent_port: a.contactPort,
          tpm_policy: JSON.stringify({ mask: '0x0' }),
          runtime_policy: '',
          runtime_policy_name: '',
          mb_policy: JSON.stringify(mbPolicy),
          mb_policy_name: '',
          ima_sign_verification_keys: '',
          metadata: '{}',
          revocation_key: '',
          accept_tpm_hash_algs: ['sha256'],
          accept_tpm_encryption_algs: ['ecc', 'rsa'],
          accept_tpm_signing_algs: ['ecdsa', 'rsassa'],
          ak_tpm: Buffer.from(a.tpm.akTpm2b).toString('base64'),
          mtls_cert: a.mtlsCertPem,
          supported_version: '2.6',
        }),
      })
      expect(res.status, await res.text()).toBe(200)
      owner.set(a.uuid, v)
    }
    const failedWith = async (a: SimAgent, eventId: string): Promise<Record<string, unknown>> => {
      await until(
        () => rec(a)?.state === AGENT_STATES.INVALID_QUOTE,
        10_000,
        () => `INVALID_QUOTE, state ${rec(a)?.state} ${rec(a)?.lastEventId}`,
      )
      expect(rec(a)!.lastEventId).toBe(eventId)
      await until(
        () => notices.some((n) => n.agent_id === a.uuid),
        10_000,
        () => 'notice',
      )
      const n = notices.find((x) => x.agent_id === a.uuid)!
      expect(n.event_id).toBe(eventId)
      return JSON.parse(n.context)
    }

    beforeAll(async () => {
      ca = await createTestCa()
      webhook = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: async (req) => {
          notices.push(JSON.parse(((await req.json()) as { msg: string }).msg))
          return new Response('ok')
        },
      })
      const caDir = await loadCaDir(ca.caDir)
      fleet = await startFleet({
        count: 8 + TAMPERS.length,
        caCertPem: caDir.caCertPem,
        listen: 'ports',
        seed: `mb-e2e-${target.name}`,
        banks: ['sha1'],
      })
      for (const name of ['example', 'accept-all', 'reject-all']) {
        const db = await target.open()
        dbs.push(db)
        verifiers[name] = await startTestVerifier(db, ca, {
          quote_interval: '0.2',
          measured_boot_policy_name: name,
          revocations_enabled_revocation_notifications: "['webhook']",
          revocations_webhook_url: `http://127.0.0.1:${webhook.port}/hook`,
        })
      }
      refstate = await createRefstate()
      expect(refstate.has_secureboot).toBe(false)
      for (const i of [GOOD, KERNEL, CMDLINE, PCR4, ACCEPT, REJECT]) agent(i).serveMbLog(LOG)
      agent(PCR4).tpm.extendData(4, 'an unlogged boot application')
      agent(MALFORMED).serveMbLog(TRUNCATED, false)

      const ex = verifiers.example!
      await enrol(ex, agent(GOOD), refstate)
      const kernel = structuredClone(refstate)
      kernel.kernels[0]!.kernel_authcode_sha256 = `0x${'11'.repeat(32)}`
      await enrol(ex, agent(KERNEL), kernel)
      const cmdline = structuredClone(refstate)
      cmdline.kernels[0]!.load_options_sha256 = `0x${'22'.repeat(32)}`
      await enrol(ex, agent(CMDLINE), cmdline)
      await enrol(ex, agent(PCR4), refstate)
      await enrol(ex, agent(MALFORMED), refstate)
      await enrol(verifiers['accept-all']!, agent(ACCEPT), refstate)
      agent(EMPTY).serveMbLog(await readMbLog('vm-tamper-kernel'))
      await enrol(verifiers['accept-all']!, agent(EMPTY), {})
      for (const [i, t] of TAMPERS.entries()) {
        const a = agent(TAMPERED[i]!)
        a.serveMbLog(await readMbLog(t.dir)) // its PCRs become the altered machine's
        await enrol(verifiers['accept-all']!, a, refstate)
      }
      await enrol(verifiers['reject-all']!, agent(REJECT), refstate)
    }, 60_000)

    afterAll(async () => {
      for (const v of Object.values(verifiers)) await v.stop(1000)
      await fleet?.stop()
      webhook?.stop(true)
      for (const db of dbs) await db.close()
    })

    test('the real log replays to the PCRs the guest swtpm reported (sha1 and sha256)', async () => {
      const a = agent(GOOD)
      for (const bank of ['sha1', 'sha256'] as const) {
        for (let n = 0; n <= 9; n++) {
          expect(Buffer.from(a.tpm.readPcr(bank, n)).toString('hex'), `${bank}:${n}`).toBe(
            await genuinePcrHex(bank, n),
          )
        }
      }
    })

    test('a refstate made by our tool passes under the example policy', async () => {
      const a = agent(GOOD)
      await until(
        () => count(a) >= 3,
        15_000,
        () => `3 attestations, state ${rec(a)?.state}`,
      )
      expect(rec(a)!.state).toBe(AGENT_STATES.GET_QUOTE)
      expect(rec(a)!.lastEventId).toBeNull()
      const st = await verifiers.example!.service.agents.status(a.uuid)
      expect(st.attestation_status).toBe('PASS')
      expect(st.has_mb_refstate).toBe(1)
    }, 30_000)

    test('a changed kernel digest fails with the event named', async () => {
      const ctx = await failedWith(agent(KERNEL), 'measured_boot.policy_example')
      expect(ctx.reason).toContain('event 10 (PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION)')
      expect(ctx.reason).toContain('kernel_authcode_sha256')
      expect(count(agent(KERNEL))).toBe(0)
    }, 30_000)

    test('a changed command line (EFI stub LoadOptions) fails with the event named', async () => {
      const ctx = await failedWith(agent(CMDLINE), 'measured_boot.policy_example')
      expect(ctx.reason).toContain('event 21 (PCR 9 EV_EVENT_TAG)')
      expect(ctx.reason).toContain('load_options_sha256')
    }, 30_000)

    test('a PCR the log does not explain fails the replay check with the PCR and event', async () => {
      const ctx = await failedWith(agent(PCR4), 'measured_boot.invalid_pcr_4')
      expect(ctx.expected).toBe(await genuinePcrHex('sha256', 4))
      expect(String(ctx.reason)).toContain('PCR 4')
    }, 30_000)

    test('a malformed log is a typed parser failure, not a verifier exception', async () => {
      const a = agent(MALFORMED)
      const ctx = await failedWith(a, 'measured_boot.parser.tpm2_eventlog.error')
      expect(String(ctx.code)).toMatch(/^ERR_MB_/)
      expect(rec(a)!.state).toBe(AGENT_STATES.INVALID_QUOTE) // not FAILED / internal exception
      // the good agent on the same verifier is unaffected
      expect(rec(agent(GOOD))!.state).toBe(AGENT_STATES.GET_QUOTE)
    }, 30_000)

    test('accept-all: the genuine boot passes with its refstate, and an empty refstate skips measured boot', async () => {
      for (const a of [agent(ACCEPT), agent(EMPTY)]) {
        await until(
          () => count(a) >= 2,
          10_000,
          () => `accept-all PASS, state ${rec(a)?.state} ${rec(a)?.lastEventId}`,
        )
        expect(rec(a)!.lastEventId).toBeNull()
      }
    }, 30_000)

    test('accept-all: each real altered boot fails measured_boot.policy_example, naming the component', async () => {
      for (const [i, t] of TAMPERS.entries()) {
        const ctx = await failedWith(agent(TAMPERED[i]!), 'measured_boot.policy_example')
        expect(ctx.policy, t.dir).toBe('example')
        for (const s of t.names) expect(String(ctx.reason), t.dir).toContain(s)
      }
    }, 30_000)

    test('reject-all fails every agent', async () => {
      await failedWith(agent(REJECT), 'measured_boot.policy_reject-all')
      expect(count(agent(REJECT))).toBe(0)
    }, 30_000)
  })
}
