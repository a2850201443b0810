/**
 * Push-mode attestation (API 3.0) end to end through the real routes: agents enrolled without a
 * V (push mode), a soft TPM's genuine TPM2_Quote with qualifying data = the challenge and the PCR
 * blob as `subject_data`, the agent side through `asAgent` (the bearer identity of the auth
 * branch), the admin side through the verifier's admin app. Covers the rust-keylime checklist
 * (push-protocol.md §1.5.9): 201 with `Location` and the full key echo, 202 with
 * `seconds_to_next_attestation`, the 403/404/422/429 codes; asynchronous verification to PASS and
 * to FAIL with `failure_reason`; IMA incremental offsets; TIMEOUT after 5 quote intervals, its
 * recovery, and its survival across a verifier restart; revocation webhooks.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { AGENT_STATES } from '../src/protocol/agent-states.ts'
import { replayImaList } from '../src/ima/index.ts'
import { runPolicyCreateRuntime } from '../src/policy-tools/index.ts'
import { runPolicyCreateMeasuredBoot } from '../src/policy-tools/create-refstate-cli.ts'
import { parseEventLog, replayEventLog } from '../src/mb/index.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { readEvidence } from '../src/verifier/push/read-evidence.ts'
import { enrolmentBody } from './support/fleet/enroll-agent.ts'
import { pushCapabilities } from './support/push-capabilities.ts'
import { databaseTargets } from './support/databases.ts'
import { generateSoftTpmKey, SoftTpm } from './support/fleet/soft-tpm.ts'
import { until } from './support/until.ts'
import { createTestCa, startTestVerifier, type TestCa } from './support/verifier-harness.ts'

const IMA_PATH = join(import.meta.dir, 'fixtures/ima/vm/b/ascii_runtime_measurements')
const IMA_LOG = readFileSync(IMA_PATH, 'utf8')
const IMA_LINES = IMA_LOG.split('\n').filter((l) => l !== '')
const MB_PATH = join(import.meta.dir, 'fixtures/mb/vm-plain/binary_bios_measurements')
const MB_LOG = readFileSync(MB_PATH)
const JSON_API = 'application/vnd.api+json'
const BOOT = '2026-01-15T10:30:00Z'

type Doc = {
  data: { attributes: Record<string, unknown>; links?: { self: string } }
  meta?: Record<string, unknown>
  errors?: { status: string; code: string; detail: string; source?: { pointer: string } }[]
}

/** A push agent: its soft TPM and IMA progress. */
interface PushAgent {
  id: string
  tpm: SoftTpm
}

function newAgent(id: string, ak: 'rsa' | 'ecc' = 'ecc'): PushAgent {
  const tpm = new SoftTpm({
    keys: {
      ek: generateSoftTpmKey('ecc'),
      ak: generateSoftTpmKey(ak),
      nk: generateSoftTpmKey('rsa'),
    },
    hashAlg: 'sha256',
    banks: ['sha1', 'sha256'],
  })
  return { id, tpm }
}

/** The capabilities the rust push agent sends (push-protocol.md §1.5.5). */
function capabilities(a: PushAgent, imaEntries = 0, boot = BOOT) {
  return pushCapabilities({
    akType: a.tpm.akType,
    akTpm2b: a.tpm.akTpm2b,
    localIdentifier: Buffer.from(a.tpm.akName).toString('hex'),
    uefiLog: true,
    imaEntries,
    bootTime: boot,
  })
}

for (const target of databaseTargets()) {
  describe(`push attestation (${target.name})`, () => {
    let kdb: KeylimeDatabase
    let ca: TestCa
    let v: VerifierHandle
    let webhook: ReturnType<typeof Bun.serve>
    let imaPolicy: string
    const notices: { msg: string }[] = []
    const CONFIG = {
      quote_interval: '0.4',
      challenge_lifetime: '3',
      revocations_enabled_revocation_notifications: "['webhook']",
    }

    const agentCall = async (a: PushAgent, method: string, path: string, body?: unknown) => {
      const res = await v.asAgent(a.id).request(path, {
        method,
        headers: { 'content-type': JSON_API },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      return { res, doc: (await res.json()) as Doc }
    }
    const admin = async (path: string, init: RequestInit = {}) => {
      const res = await v.app.request(path, init)
      const text = await res.text()
      return {
        res,
        doc: (text === '' ? {} : JSON.parse(text)) as Doc & { results?: Record<string, unknown> },
      }
    }
    const status = async (a: PushAgent) =>
      (await admin(`/v2.6/agents/${a.id}`)).doc.results as Record<string, unknown>

    /** The v2 enrolment fields, without a V or an mTLS certificate (push mode). */
    const enrolment = (a: PushAgent, p: { pcr15?: string; ima?: string; mb?: string } = {}) =>
      enrolmentBody(
        {
          ip: '127.0.0.1',
          port: 9002,
          akTpm: Buffer.from(a.tpm.akTpm2b).toString('base64'),
          tpmPolicy: JSON.stringify(
            p.pcr15 ? { '15': [p.pcr15], mask: '0x8000' } : { mask: '0x0' },
          ),
          runtimePolicy: p.ima === undefined ? '' : Buffer.from(p.ima).toString('base64'),
          acceptHashAlgs: ['sha256', 'sha1'],
        },
        { mb_policy: p.mb ?? null },
      )
    const enrol = async (a: PushAgent, p: { pcr15?: string; ima?: string; mb?: string } = {}) => {
      const { res } = await admin(`/v2.6/agents/${a.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(enrolment(a, p)),
      })
      expect(res.status).toBe(200)
    }

    /** Phase 1 then phase 2, with the quote over what was requested; returns the 202's doc. */
    const attest = async (a: PushAgent, ima?: { from: number; upTo: number }, boot = BOOT) => {
      const created = await agentCall(
        a,
        'POST',
        `/v3.0/agents/${a.id}/attestations`,
        capabilities(a, ima?.upTo ?? 0, boot),
      )
      expect(created.res.status, JSON.stringify(created.doc)).toBe(201)
      const requested = created.doc.data.attributes.evidence_requested as {
        evidence_type: string
        chosen_parameters: Record<string, unknown>
      }[]
      const q = requested[0]!.chosen_parameters
      const pcrs = (q.selected_subjects as Record<string, number[] | null>).sha256 ?? []
      const quote = a.tpm.quote(Buffer.from(q.challenge as string, 'base64'), pcrs)
      const collected = requested.map((r) => {
        if (r.evidence_type === 'tpm_quote') {
          return {
            evidence_class: 'certification',
            evidence_type: 'tpm_quote',
            data: {
              message: Buffer.from(quote.attest).toString('base64'),
              signature: Buffer.from(quote.signature).toString('base64'),
              subject_data: Buffer.from(quote.pcrBlob).toString('base64'),
            },
          }
        }
        if (r.evidence_type === 'uefi_log') {
          return {
            evidence_class: 'log',
            evidence_type: 'uefi_log',
            data: { entries: MB_LOG.toString('base64') },
          }
        }
        const from = r.chosen_parameters.starting_offset as number
        const lines = IMA_LINES.slice(from, ima?.upTo ?? 0)
        return {
          evidence_class: 'log',
          evidence_type: 'ima_log',
          data: { entry_count: lines.length, entries: lines.map((l) => `${l}\n`).join('') },
        }
      })
      const location = created.res.headers.get('location')!
      const sent = await agentCall(a, 'PATCH', location, {
        data: { type: 'attestation', attributes: { evidence_collected: collected } },
      })
      return { created, sent, requested, location }
    }
    const settle = () => v.service.attestations!.idle()

    beforeAll(async () => {
      ca = await createTestCa()
      kdb = await target.open()
      webhook = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: async (req) => {
          notices.push((await req.json()) as { msg: string })
          return new Response('ok')
        },
      })
      v = await startTestVerifier(
        kdb,
        ca,
        { ...CONFIG, revocations_webhook_url: `http://127.0.0.1:${webhook.port}/hook` },
        { checkWorkers: 1, pushStalledMs: 1000 },
      )
      const out: string[] = []
      const rc = await runPolicyCreateRuntime(['-m', IMA_PATH, '-o', '/dev/stdout'], {
        cwd: mkdtempSync(join(tmpdir(), 'kl-push-')),
        stdout: { write: (s: string) => void out.push(s) },
        stderr: { write: () => undefined },
      })
      expect(rc).toBe(0)
      imaPolicy = out.join('')
    }, 60_000)

    afterAll(async () => {
      await v?.stop(200)
      webhook?.stop(true)
      await kdb?.close()
    })

    test('capabilities → 201 with Location and the request; evidence → 202; verification PASS', async () => {
      const a = newAgent(`push-pass-${target.name}`)
      const pcr15 = Buffer.from(a.tpm.readPcr('sha256', 15)).toString('hex')
      await enrol(a, { pcr15 })
      expect((await status(a)).attestation_status).toBe('PENDING')
      const { created, sent, location } = await attest(a)
      expect(location).toBe(`/v3.0/agents/${a.id}/attestations/0`)
      expect(created.res.headers.get('content-type')).toBe(JSON_API)
      const attrs = created.doc.data.attributes
      expect(attrs.stage).toBe('awaiting_evidence')
      const [quote] = attrs.evidence_requested as { chosen_parameters: Record<string, unknown> }[]
      const cp = quote!.chosen_parameters
      expect(cp.signature_scheme).toBe('ecdsa')
      expect(cp.hash_algorithm).toBe('sha256')
      expect(cp.selected_subjects).toEqual({ sha1: null, sha256: [15] })
      expect(Buffer.from(cp.challenge as string, 'base64')).toHaveLength(16)
      // the full key echo: the rust CertificationKey has non-optional members
      expect(cp.certification_key).toMatchObject({
        key_class: 'asymmetric',
        key_algorithm: 'ecc',
        key_size: 256,
        server_identifier: 'ak',
        public: Buffer.from(a.tpm.akTpm2b).toString('base64'),
      })
      expect(attrs.capabilities_received_at).toMatch(
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/,
      )

      expect(sent.res.status, JSON.stringify(sent.doc)).toBe(202)
      expect(sent.doc.data.attributes.stage).toBe('evaluating_evidence')
      const seconds = sent.doc.meta?.seconds_to_next_attestation
      expect(Number.isInteger(seconds) && (seconds as number) >= 0).toBe(true)
      const ev = sent.doc.data.attributes.evidence as Record<string, unknown>[]
      for (const e of ev)
        expect(Object.keys(e)).toEqual(
          expect.arrayContaining(['capabilities', 'chosen_parameters', 'data']),
        )

      await settle()
      const latest = await admin(`/v3.0/agents/${a.id}/attestations/latest`)
      expect(latest.res.status).toBe(200)
      expect(latest.doc.data.attributes.evaluation).toBe('pass')
      expect(latest.doc.data.attributes.verification_completed_at).toBeString()
      const s = await status(a)
      expect(s.attestation_status).toBe('PASS')
      expect(s.attestation_count).toBe(1)
    })

    test('a PCR change → FAIL with failure_reason, a webhook notice, 429 while premature', async () => {
      const a = newAgent(`push-fail-${target.name}`, 'rsa')
      await enrol(a, { pcr15: Buffer.from(a.tpm.readPcr('sha256', 15)).toString('hex') })
      await attest(a)
      // at once again: premature, with Retry-After
      const early = await agentCall(a, 'POST', `/v3.0/agents/${a.id}/attestations`, capabilities(a))
      expect(early.res.status).toBe(429)
      expect(early.doc.errors?.[0]?.code).toBe('premature_attestation')
      expect(Number(early.res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      await settle()
      await Bun.sleep(450)
      a.tpm.extendData(15, 'tampered')
      const before = notices.length
      await attest(a)
      await settle()
      const latest = await admin(`/v3.0/agents/${a.id}/attestations/1`)
      expect(latest.doc.data.attributes.evaluation).toBe('fail')
      expect(latest.doc.data.attributes.failure_reason).toBe('policy_violation')
      const s = await status(a)
      expect(s.attestation_status).toBe('FAIL')
      expect(s.last_event_id).toBe('pcr_validation.invalid_pcr_15')
      // the agent's EAR says so too
      const ear = await v.app.request(`/v3.0/agents/${a.id}/ear`)
      const claims = JSON.parse(
        Buffer.from((await ear.text()).split('.')[1]!, 'base64url').toString(),
      )
      expect(JSON.stringify(claims.submods)).toContain('"ear_status":"contraindicated"')
      await until(() => notices.length > before, 5000, 'revocation webhook')
      expect(notices.at(-1)!.msg).toContain(a.id)
    })

    test('403 old_attestation / evidence_immutable / challenges_expired, 404, 422 with pointers', async () => {
      const a = newAgent(`push-codes-${target.name}`)
      await enrol(a)
      const none = await agentCall(a, 'PATCH', `/v3.0/agents/${a.id}/attestations/latest`, {})
      expect(none.res.status).toBe(404)
      const bad = await agentCall(a, 'POST', `/v3/agents/${a.id}/attestations`, {
        data: { type: 'attestation', attributes: { evidence_supported: 'x', system_info: {} } },
      })
      expect(bad.res.status).toBe(422)
      expect(bad.doc.errors?.[0]?.source?.pointer).toBe('/data/attributes/evidence_supported')

      const first = await attest(a)
      expect(first.sent.res.status).toBe(202)
      const again = await agentCall(a, 'PATCH', first.location, {
        data: { type: 'attestation', attributes: { evidence_collected: [] } },
      })
      expect(again.res.status).toBe(403)
      expect(again.doc.errors?.[0]?.code).toBe('evidence_immutable')
      await settle()
      await Bun.sleep(450)
      const second = await agentCall(
        a,
        'POST',
        `/v3.0/agents/${a.id}/attestations`,
        capabilities(a),
      )
      expect(second.res.status).toBe(201)
      const old = await agentCall(a, 'PATCH', first.location, { data: {} })
      expect(old.res.status).toBe(403)
      expect(old.doc.errors?.[0]?.code).toBe('old_attestation')
      const short = await agentCall(a, 'PATCH', `/v3.0/agents/${a.id}/attestations/latest`, {
        data: { type: 'attestation', attributes: { evidence_collected: [] } },
      })
      expect(short.res.status).toBe(422)
      expect(short.doc.errors?.[0]?.source?.pointer).toBe('/data/attributes/evidence_collected')
      await Bun.sleep(3100) // challenge_lifetime = 3
      const expired = await agentCall(a, 'PATCH', `/v3.0/agents/${a.id}/attestations/latest`, {
        data: { type: 'attestation', attributes: { evidence_collected: [] } },
      })
      expect(expired.res.status).toBe(403)
      expect(expired.doc.errors?.[0]?.code).toBe('challenges_expired')
      const unknown = await v.asAgent('nobody').request('/v3.0/agents/nobody/attestations', {
        method: 'POST',
        headers: { 'content-type': JSON_API },
        body: JSON.stringify(capabilities(a)),
      })
      expect(unknown.status).toBe(404)
    }, 15_000)

    test('IMA: the second attestation continues from the first one’s entries', async () => {
      const a = newAgent(`push-ima-${target.name}`)
      await enrol(a, { ima: imaPolicy })
      const half = Math.floor(IMA_LINES.length / 2)
      const pcr10 = (n: number) =>
        replayImaList(
          IMA_LINES.slice(0, n)
            .map((l) => `${l}\n`)
            .join(''),
          ['sha256'],
        ).pcr10.get('sha256')!
      a.tpm.restorePcr('sha256', 10, pcr10(half))
      const one = await attest(a, { from: 0, upTo: half })
      expect(one.requested.map((r) => r.evidence_type)).toEqual(['tpm_quote', 'ima_log'])
      expect(one.requested[1]!.chosen_parameters).toEqual({
        starting_offset: 0,
        format: 'text/plain',
      })
      await settle()
      expect((await status(a)).attestation_status).toBe('PASS')
      await Bun.sleep(450)
      a.tpm.restorePcr('sha256', 10, pcr10(IMA_LINES.length))
      const two = await attest(a, { from: half, upTo: IMA_LINES.length })
      expect(two.requested[1]!.chosen_parameters.starting_offset).toBe(half)
      await settle()
      // an IMA list to replay is checked on a check worker
      expect(v.checks.offloaded).toBeGreaterThan(0)
      const latest = await admin(`/v3.0/agents/${a.id}/attestations/latest`)
      expect(latest.doc.data.attributes.evaluation).toBe('pass')
      // a reboot starts over at 0
      await Bun.sleep(450)
      const rebooted = await agentCall(
        a,
        'POST',
        `/v3.0/agents/${a.id}/attestations`,
        capabilities(a, IMA_LINES.length, '2026-01-16T00:00:00Z'),
      )
      const req = rebooted.doc.data.attributes.evidence_requested as {
        chosen_parameters: Record<string, unknown>
      }[]
      expect(req[1]!.chosen_parameters.starting_offset).toBe(0)
    })

    test('measured boot: the UEFI log is requested and evaluated; a PCR it does not explain fails', async () => {
      const out: string[] = []
      const rc = await runPolicyCreateMeasuredBoot(['-e', MB_PATH, '-i', '-o', '-'], {
        cwd: mkdtempSync(join(tmpdir(), 'kl-push-mb-')),
        stdout: { write: (s: string) => void out.push(s) },
        stderr: { write: () => undefined },
      })
      expect(rc).toBe(0)
      const a = newAgent(`push-mb-${target.name}`)
      for (const [n, value] of replayEventLog(parseEventLog(MB_LOG)).pcrs.get('sha256')!) {
        a.tpm.restorePcr('sha256', n, value)
      }
      await enrol(a, { mb: out.join('') })
      const one = await attest(a)
      expect(one.requested.map((r) => r.evidence_type)).toEqual(['tpm_quote', 'uefi_log'])
      expect(one.requested[1]!.chosen_parameters).toEqual({ format: 'application/octet-stream' })
      await settle()
      const passed = await admin(`/v3.0/agents/${a.id}/attestations/latest`)
      expect(passed.doc.data.attributes.evaluation, JSON.stringify(await status(a))).toBe('pass')
      // a PCR that the log does not replay to breaks the evidence chain
      await Bun.sleep(450)
      a.tpm.extendData(4, 'not in the log')
      await attest(a)
      await settle()
      const failed = await admin(`/v3.0/agents/${a.id}/attestations/latest`)
      expect(failed.doc.data.attributes.evaluation).toBe('fail')
      expect(failed.doc.data.attributes.failure_reason).toBe('broken_evidence_chain')
    })

    test('TIMEOUT after 5 quote intervals without evidence, back to PASS, and kept across a restart', async () => {
      const a = newAgent(`push-timeout-${target.name}`)
      await enrol(a)
      await attest(a)
      await settle()
      expect((await status(a)).attestation_status).toBe('PASS')
      await until(async () => (await status(a)).attestation_status === 'TIMEOUT', 6000, 'TIMEOUT')
      // the lease owner records it once and notifies
      const mine = () => notices.filter((n) => n.msg.includes(a.id) && n.msg.includes('timeout'))
      await until(() => mine().length === 1, 6000, 'timeout webhook')
      // restart: the state comes from the database
      await v.stop(200)
      v = await startTestVerifier(
        kdb,
        ca,
        { ...CONFIG, revocations_webhook_url: `http://127.0.0.1:${webhook.port}/hook` },
        { checkWorkers: 1, pushStalledMs: 1000 },
      )
      expect((await status(a)).attestation_status).toBe('TIMEOUT')
      const row = await v.store.agents.getAgent(a.id)
      expect(row?.accept_attestations).toBe(false)
      await Bun.sleep(500)
      expect(mine()).toHaveLength(1) // once per silence, not again by the new instance
      // TIMEOUT → PASS on the next good attestation
      await attest(a)
      await settle()
      expect((await status(a)).attestation_status).toBe('PASS')
    }, 20_000)

    test('v3 admin API: enrol, list, show, PATCH accept_attestations out of FAIL, 422, delete', async () => {
      const a = newAgent(`push-v3-${target.name}`)
      const pcr15 = Buffer.from(a.tpm.readPcr('sha256', 15)).toString('hex')
      const {
        cloudagent_ip: _ip,
        cloudagent_port: _port,
        v: _v,
        ...attributes
      } = enrolment(a, { pcr15 })
      const json = { 'content-type': JSON_API }
      const created = await admin('/v3.0/agents', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ data: { type: 'agent', id: a.id, attributes } }),
      })
      expect(created.res.status, JSON.stringify(created.doc)).toBe(201)
      expect(created.res.headers.get('location')).toBe(`/v3.0/agents/${a.id}`)
      expect(created.doc.data.attributes).toMatchObject({ mode: 'push', accept_attestations: true })
      const dup = await admin('/v3.0/agents', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ data: { type: 'agent', id: a.id, attributes } }),
      })
      expect(dup.res.status).toBe(409)
      expect(dup.doc.errors?.[0]?.code).toBe('conflict')
      const list = await admin('/v3.0/agents')
      expect(list.res.headers.get('content-type')).toBe(JSON_API)
      const ids = (list.doc.data as unknown as { id: string }[]).map((d) => d.id)
      expect(ids).toContain(a.id)

      a.tpm.extendData(15, 'tampered')
      await attest(a)
      await settle()
      const failed = await admin(`/v3.0/agents/${a.id}`)
      expect(failed.doc.data.attributes).toMatchObject({
        attestation_status: 'FAIL',
        consecutive_attestation_failures: 1,
      })
      const immutable = await admin(`/v3.0/agents/${a.id}`, {
        method: 'PATCH',
        headers: json,
        body: JSON.stringify({ data: { type: 'agent', attributes: { ip: '10.0.0.1' } } }),
      })
      expect(immutable.res.status).toBe(422)
      expect(immutable.doc.errors?.[0]?.source?.pointer).toBe('/data/attributes/ip')
      // the operator fixes the policy and reactivates
      const fixed = await admin(`/v3.0/agents/${a.id}`, {
        method: 'PATCH',
        headers: json,
        body: JSON.stringify({
          data: {
            type: 'agent',
            attributes: {
              accept_attestations: true,
              tpm_policy: JSON.stringify({
                '15': [Buffer.from(a.tpm.readPcr('sha256', 15)).toString('hex')],
                mask: '0x8000',
              }),
            },
          },
        }),
      })
      expect(fixed.res.status, JSON.stringify(fixed.doc)).toBe(200)
      expect(fixed.doc.data.attributes.consecutive_attestation_failures).toBe(0)
      await Bun.sleep(450)
      await attest(a)
      await settle()
      expect((await status(a)).attestation_status).toBe('PASS')

      const gone = await admin(`/v3.0/agents/${a.id}`, { method: 'DELETE' })
      expect(gone.res.status).toBe(204)
      const missing = await admin(`/v3.0/agents/${a.id}`)
      expect(missing.res.status).toBe(404)
      expect(missing.doc.errors?.[0]?.code).toBe('not_found')
    })

    test('evidence a stopped verifier left without a verdict is verified by the lease owner', async () => {
      const a = newAgent(`push-stalled-${target.name}`)
      await enrol(a, { pcr15: Buffer.from(a.tpm.readPcr('sha256', 15)).toString('hex') })
      const created = await agentCall(
        a,
        'POST',
        `/v3.0/agents/${a.id}/attestations`,
        capabilities(a),
      )
      expect(created.res.status).toBe(201)
      // the evidence is stored as a verifier that stopped right after its 202 would leave it
      const stored = (await v.store.attestations.get(a.id))!
      const q = a.tpm.quote(stored.items[0]!.chosen_parameters__challenge!, [15])
      const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
      const updates = readEvidence(
        {
          evidence_collected: [
            {
              evidence_class: 'certification',
              evidence_type: 'tpm_quote',
              data: {
                message: b64(q.attest),
                signature: b64(q.signature),
                subject_data: b64(q.pcrBlob),
              },
            },
          ],
        },
        stored.items,
      )
      const received = new Date(Date.now() - 1500).toISOString().replace('Z', '000+00:00')
      expect(await v.store.attestations.submitEvidence(a.id, 0, received, updates)).toBe(true)
      await until(
        async () => (await status(a)).attestation_status === 'PASS',
        8000,
        'verified by the lease owner',
      )
      expect((await status(a)).attestation_count).toBe(1)
      // a verdict is written once: a second run (two verifiers resuming it) changes nothing
      const again = await v.store.attestations.complete({
        agentId: a.id,
        index: 0,
        evaluation: 'fail',
        failureReason: 'policy_violation',
        completedAt: received,
        now: 0,
        autoRecover: false,
      })
      expect(again).toBe(false)
      expect((await status(a)).attestation_status).toBe('PASS')
    }, 15_000)

    test('over real TLS: the tenant certificate cannot submit (403), anonymous cannot read, admin reads', async () => {
      const a = newAgent(`push-tls-${target.name}`)
      await enrol(a)
      await attest(a)
      await settle()
      const url = v.servers[0]!.url
      const file = (n: string) => readFileSync(join(ca.caDir, n), 'utf8')
      const tls = { ca: file('cacert.crt'), checkServerIdentity: () => undefined }
      const admin = { ...tls, cert: file('client-cert.crt'), key: file('client-private.pem') }
      const post = await fetch(`${url}/v3.0/agents/${a.id}/attestations`, {
        method: 'POST',
        headers: { 'content-type': JSON_API },
        body: JSON.stringify(capabilities(a)),
        tls: admin,
      } as RequestInit)
      // keylime-tests regression/push-tenant_cannot_access_agent_endpoint
      expect(post.status).toBe(403)
      const anon = await fetch(`${url}/v3.0/agents/${a.id}/attestations`, { tls } as RequestInit)
      expect(anon.status).toBe(403)
      const read = await fetch(`${url}/v3.0/agents/${a.id}/attestations`, {
        tls: admin,
      } as RequestInit)
      expect(read.status).toBe(200)
      expect(read.headers.get('content-type')).toBe(JSON_API)
      const list = (await read.json()) as { data: { attributes: { evaluation: string } }[] }
      expect(list.data.map((d) => d.attributes.evaluation)).toEqual(['pass'])
    })

    test('a push agent is never polled; a pull agent cannot push', async () => {
      const a = newAgent(`push-nopoll-${target.name}`)
      await enrol(a)
      const rec = v.loop.records.get(a.id)
      expect(rec?.push).toBe(true)
      // polled, its unreachable address (127.0.0.1:9002) would be retried and failed by now
      await Bun.sleep(1500)
      await v.loop.flush()
      const row = await v.store.agents.getAgent(a.id)
      expect(row?.mode).toBe('push')
      expect(row?.operational_state).toBe(AGENT_STATES.GET_QUOTE)
      expect(v.loop.records.get(a.id)?.state).toBe(AGENT_STATES.GET_QUOTE)
      expect(row?.last_received_quote).toBe(0)
      // and a pull agent never pushes (keylime-tests attestation-mode-mismatch)
      await v.store.agents.updateAgent(a.id, { mode: 'pull' })
      const refused = await agentCall(
        a,
        'POST',
        `/v3.0/agents/${a.id}/attestations`,
        capabilities(a),
      )
      expect(refused.res.status).toBe(404)
      expect(refused.doc.errors?.[0]?.code).toBe('not_found')
    })
  })
}
