/**
 * rust-keylime's push agent (`keylime_push_model_agent` v0.2.9) replayed against our verifier over
 * real TLS: its exact request sequence (`POST /v3.0/sessions`, `PATCH /v3.0/sessions/:id`,
 * `POST /v3.0/agents/:id/attestations`, `PATCH <Location>`), its headers (`Content-Type` and
 * `Accept: application/vnd.api+json`, a 6-character `X-Request-ID`) and its bodies (the Rust test
 * data in test/fixtures/rust-keylime-push, with the real AK, and real swtpm proofs and quotes).
 * Each answer is checked against what the Rust side deserializes (keylime/src/structures:
 * `SessionResponse`, `SessionIdResponse`, `AttestationResponse`, `EvidenceHandlingResponse`): the
 * non-optional fields present with their JSON types, timestamps chrono parses, the 201
 * `Location` (`HeaderValidator`), `meta.seconds_to_next_attestation` an unsigned integer, and 401
 * (re-authenticate at once) for unknown or ended tokens (push-protocol.md §1.4, §1.5.9).
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { HardwareAgentTpm } from '../src/agent/tpm/hardware-agent-tpm.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { runPolicyCreateRuntime } from '../src/policy-tools/index.ts'
import { databaseTargets } from './support/databases.ts'
import { imaNgLine } from './support/ima-ng-line.ts'
import { openSwtpmAgentTpm } from './support/push-agent.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from './support/swtpm.ts'
import { until } from './support/until.ts'
import { createTestCa, startTestVerifier, type TestCa } from './support/verifier-harness.ts'
import { enrolmentBody } from './support/fleet/enroll-agent.ts'

const missing = missingSwtpmTools()
if (missing.length > 0)
  console.log(`skipping rust push agent replay: missing ${missing.join(', ')}`)

/** A JSON document as the tests walk it (its shape is what the checks below assert). */
// biome-ignore lint/suspicious/noExplicitAny: JSON documents, checked field by field below
type Json = any

const FIXTURES = join(import.meta.dir, 'fixtures/rust-keylime-push')
const fixture = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Json
const JSON_API = 'application/vnd.api+json'

// --- what serde accepts (keylime/src/structures), as checks that name the failing path ----------

type Obj = Record<string, unknown>
/** chrono `DateTime<Utc>` from a JSON string: RFC 3339 with an offset. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/

function obj(v: unknown, at: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error(`${at}: not an object`)
  return v as Obj
}
function str(o: Obj, k: string, at: string): string {
  if (typeof o[k] !== 'string') throw new Error(`${at}.${k}: not a string`)
  return o[k] as string
}
function uint(o: Obj, k: string, at: string): number {
  const v = o[k]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new Error(`${at}.${k}: not an unsigned integer`)
  return v
}
function bool(o: Obj, k: string, at: string): void {
  if (typeof o[k] !== 'boolean') throw new Error(`${at}.${k}: not a boolean`)
}
function arr(o: Obj, k: string, at: string): unknown[] {
  if (!Array.isArray(o[k])) throw new Error(`${at}.${k}: not an array`)
  return o[k] as unknown[]
}
function strings(o: Obj, k: string, at: string): void {
  arr(o, k, at).forEach((s, i) => {
    if (typeof s !== 'string') throw new Error(`${at}.${k}[${i}]: not a string`)
  })
}
function time(o: Obj, k: string, at: string): void {
  if (!RFC3339.test(str(o, k, at))) throw new Error(`${at}.${k}: not RFC 3339`)
}
/** `Option<T>`: absent or null is None. */
function opt(o: Obj, k: string, check: (o: Obj, k: string, at: string) => unknown, at: string) {
  if (o[k] !== undefined && o[k] !== null) check(o, k, at)
}

/** `PcrBanks`: every bank `Option<Vec<u32>>`. */
function pcrBanks(v: unknown, at: string): void {
  const o = obj(v, at)
  for (const bank of ['sha1', 'sha256', 'sha384', 'sha512', 'sm3_256'])
    opt(
      o,
      bank,
      (b, k) => {
        for (const [i, n] of arr(b, k, at).entries())
          if (typeof n !== 'number' || !Number.isInteger(n) || n < 0)
            throw new Error(`${at}.${k}[${i}]: not a u32`)
      },
      at,
    )
}
/** `CertificationKey`. */
function certificationKey(v: unknown, at: string): void {
  const o = obj(v, at)
  for (const k of ['key_algorithm', 'key_class', 'server_identifier', 'local_identifier', 'public'])
    str(o, k, at)
  uint(o, 'key_size', at)
  opt(o, 'allowable_hash_algorithms', strings, at)
  opt(o, 'allowable_signature_schemes', strings, at)
}
/** `ChosenParameters` (try_from: `LogParameters` first, else `CertificationParameters`). */
function chosenParameters(v: unknown, at: string): 'log' | 'certification' {
  const o = obj(v, at)
  if (typeof o.format === 'string') {
    opt(o, 'starting_offset', uint, at)
    opt(o, 'entry_count', uint, at)
    return 'log'
  }
  opt(o, 'challenge', str, at)
  opt(o, 'hash_algorithm', str, at)
  opt(o, 'signature_scheme', str, at)
  if (o.selected_subjects != null) pcrBanks(o.selected_subjects, `${at}.selected_subjects`)
  if (o.certification_key != null) certificationKey(o.certification_key, `${at}.certification_key`)
  const some = ['certification_key', 'hash_algorithm', 'challenge', 'selected_subjects']
  if (![...some, 'signature_scheme'].some((k) => o[k] != null))
    throw new Error(`${at}: neither LogParameters nor CertificationParameters`)
  return 'certification'
}
/** `EvidenceCapabilities` (untagged: `Capabilities` or `LogCapabilities`). */
function evidenceCapabilities(v: unknown, at: string): void {
  const o = obj(v, at)
  if ('certification_keys' in o) {
    str(o, 'component_version', at)
    strings(o, 'hash_algorithms', at)
    strings(o, 'signature_schemes', at)
    pcrBanks(o.available_subjects, `${at}.available_subjects`)
    for (const [i, k] of arr(o, 'certification_keys', at).entries())
      certificationKey(k, `${at}.certification_keys[${i}]`)
    return
  }
  opt(o, 'evidence_version', str, at)
  uint(o, 'entry_count', at)
  bool(o, 'supports_partial_access', at)
  bool(o, 'appendable', at)
  strings(o, 'formats', at)
}
/** `EvidenceData` (try_from: `subject_data`, else `entry_count`, else `entries`). */
function evidenceData(v: unknown, at: string): void {
  const o = obj(v, at)
  if ('subject_data' in o) {
    for (const k of ['subject_data', 'message', 'signature']) str(o, k, at)
  } else if ('entry_count' in o) {
    uint(o, 'entry_count', at)
    if (!('entries' in o)) throw new Error(`${at}.entries: missing`)
    opt(o, 'entries', str, at)
  } else if ('entries' in o) {
    opt(o, 'entries', str, at)
  } else throw new Error(`${at}: not EvidenceData`)
}

/** `SessionResponse`. */
function sessionResponse(doc: unknown): void {
  const d = obj(obj(doc, '$').data, 'data')
  str(d, 'type', 'data')
  str(d, 'id', 'data')
  const a = obj(d.attributes, 'attributes')
  str(a, 'agent_id', 'attributes')
  arr(a, 'authentication_requested', 'attributes').forEach((r, i) => {
    const at = `authentication_requested[${i}]`
    const o = obj(r, at)
    str(o, 'authentication_class', at)
    str(o, 'authentication_type', at)
    str(obj(o.chosen_parameters, at), 'challenge', `${at}.chosen_parameters`)
  })
  time(a, 'created_at', 'attributes')
  time(a, 'challenges_expire_at', 'attributes')
}
/** `SessionIdResponse`. */
function sessionIdResponse(doc: unknown): void {
  const d = obj(obj(doc, '$').data, 'data')
  str(d, 'type', 'data')
  str(d, 'id', 'data')
  const a = obj(d.attributes, 'attributes')
  str(a, 'agent_id', 'attributes')
  str(a, 'evaluation', 'attributes')
  opt(a, 'token', str, 'attributes')
  arr(a, 'authentication', 'attributes').forEach((r, i) => {
    const at = `authentication[${i}]`
    const o = obj(r, at)
    str(o, 'authentication_class', at)
    str(o, 'authentication_type', at)
    str(obj(o.chosen_parameters, at), 'challenge', `${at}.chosen_parameters`)
    str(obj(o.data, at), 'message', `${at}.data`)
    str(obj(o.data, at), 'signature', `${at}.data`)
  })
  for (const k of ['created_at', 'challenges_expire_at', 'response_received_at'])
    time(a, k, 'attributes')
  opt(a, 'token_expires_at', time, 'attributes')
}
/** `AttestationResponse`. */
function attestationResponse(doc: unknown): Obj[] {
  const d = obj(obj(doc, '$').data, 'data')
  str(d, 'type', 'data')
  const a = obj(d.attributes, 'attributes')
  str(a, 'stage', 'attributes')
  opt(a, 'capabilities_received_at', time, 'attributes')
  opt(a, 'challenges_expire_at', time, 'attributes')
  return arr(a, 'evidence_requested', 'attributes').map((r, i) => {
    const at = `evidence_requested[${i}]`
    const o = obj(r, at)
    str(o, 'evidence_class', at)
    str(o, 'evidence_type', at)
    if (o.chosen_parameters != null)
      chosenParameters(o.chosen_parameters, `${at}.chosen_parameters`)
    return o
  })
}
/** `EvidenceHandlingResponse`. */
function evidenceHandlingResponse(doc: unknown): Obj {
  const root = obj(doc, '$')
  const d = obj(root.data, 'data')
  str(d, 'type', 'data')
  const a = obj(d.attributes, 'attributes')
  str(a, 'stage', 'attributes')
  arr(a, 'evidence', 'attributes').forEach((e, i) => {
    const at = `evidence[${i}]`
    const o = obj(e, at)
    str(o, 'evidence_class', at)
    str(o, 'evidence_type', at)
    evidenceCapabilities(o.capabilities, `${at}.capabilities`)
    if (o.chosen_parameters != null)
      chosenParameters(o.chosen_parameters, `${at}.chosen_parameters`)
    evidenceData(o.data, `${at}.data`)
  })
  if (a.system_info != null) time(obj(a.system_info, 'system_info'), 'boot_time', 'system_info')
  for (const k of ['capabilities_received_at', 'challenges_expire_at', 'evidence_received_at'])
    opt(a, k, time, 'attributes')
  if (root.jsonapi != null) str(obj(root.jsonapi, 'jsonapi'), 'version', 'jsonapi')
  return obj(root.meta, 'meta')
}

// --- the replay ---------------------------------------------------------------------------------

for (const target of databaseTargets()) {
  describe.skipIf(missing.length > 0)(`rust-keylime push agent replay (${target.name})`, () => {
    const agentId = `rust-replay-${target.name}`
    let swtpm: Swtpm
    let tpm: HardwareAgentTpm
    let kdb: KeylimeDatabase
    let ca: TestCa
    let v: VerifierHandle
    let work: string
    let base: string

    /** A request as rust-keylime's `ResilientClient::get_json_request` builds it. */
    const send = async (method: string, url: string, body?: unknown, token?: string) => {
      const requestId = Math.random().toString(36).slice(2, 8).padEnd(6, '0')
      const headers: Record<string, string> = { 'X-Request-ID': requestId }
      if (body !== undefined) {
        headers['Content-Type'] = JSON_API
        headers.Accept = JSON_API
      }
      if (token !== undefined) headers.Authorization = `Bearer ${token}`
      const res = await fetch(new URL(url, base), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        tls: { ca: ca.tls.ca, checkServerIdentity: () => undefined },
      } as RequestInit)
      const text = await res.text()
      return {
        status: res.status,
        headers: res.headers,
        requestId,
        doc: (text === '' ? undefined : JSON.parse(text)) as Json,
      }
    }

    /** The session exchange (`context_info::generate_tpm_auth_proof`). */
    const authenticate = async (id = agentId) => {
      const body = fixture('session_request.json')
      body.data.attributes.agent_id = id
      const created = await send('POST', '/v3.0/sessions', body)
      expect(created.status).toBe(200)
      expect(created.headers.get('x-request-id')).toBe(created.requestId)
      sessionResponse(created.doc)
      const sid = created.doc.data.id as string
      const challenge = Buffer.from(
        created.doc.data.attributes.authentication_requested[0].chosen_parameters.challenge,
        'base64',
      )
      expect(challenge.byteLength).toBeGreaterThanOrEqual(16)
      const proof = await tpm.certifyAk(challenge)
      const proved = await send('PATCH', `/v3.0/sessions/${sid}`, {
        data: {
          type: 'session',
          id: sid,
          attributes: {
            agent_id: id,
            authentication_provided: [
              {
                authentication_class: 'pop',
                authentication_type: 'tpm_pop',
                data: {
                  message: Buffer.from(proof.attest).toString('base64'),
                  signature: Buffer.from(proof.signature).toString('base64'),
                },
              },
            ],
          },
        },
      })
      expect(proved.status).toBe(200)
      expect(proved.headers.get('x-request-id')).toBe(proved.requestId)
      sessionIdResponse(proved.doc)
      expect(proved.doc.data.attributes.evaluation).toBe('pass')
      return proved.doc.data.attributes.token as string
    }

    /** Phase 1 body: the Rust test data with this agent's AK and TPM. */
    const capabilities = () => {
      const body = fixture('evidence_supported_attestation_request.json')
      const [quote] = body.data.attributes.evidence_supported
      const all = Array.from({ length: 24 }, (_, i) => i)
      // rust-keylime offers the subjects of exactly its hash_algorithms (struct_filler.rs)
      quote.capabilities.hash_algorithms = ['sha1', 'sha256']
      quote.capabilities.available_subjects = { sha1: all, sha256: all }
      const key = quote.capabilities.certification_keys[0]
      key.public = Buffer.from(tpm.akTpm2b).toString('base64')
      key.allowable_hash_algorithms = ['sha256']
      key.allowable_signature_schemes = ['rsassa']
      body.data.attributes.system_info.boot_time = '2026-01-15T10:30:00Z'
      return body
    }

    const enrol = async (id: string, runtimePolicy = '') => {
      const res = await v.app.request(`/v2.6/agents/${id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(
          enrolmentBody({
            ip: '127.0.0.1',
            port: 9002,
            akTpm: Buffer.from(tpm.akTpm2b).toString('base64'),
            runtimePolicy,
            acceptHashAlgs: ['sha256'],
          }),
        ),
      })
      expect(res.status, await res.clone().text()).toBe(200)
    }

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'kl-rust-replay-'))
      swtpm = await startSwtpm()
      tpm = await openSwtpmAgentTpm(swtpm, work, 'rsa')
      ca = await createTestCa()
      kdb = await target.open()
      v = await startTestVerifier(kdb, ca, { quote_interval: '1' }, { checkWorkers: 1 })
      base = v.servers[0]!.url
      // enrolled as `keylime_tenant -c add --push-model` does: no v, no mtls_cert
      await enrol(agentId)
      // with a runtime policy: the IMA log is requested too
      const out: string[] = []
      const ima = join(work, 'ima')
      writeFileSync(ima, imaNgLine('/usr/bin/true', 'ab'.repeat(32)))
      const rc = await runPolicyCreateRuntime(['-m', ima, '-o', '/dev/stdout'], {
        cwd: work,
        stdout: { write: (t: string) => void out.push(t) },
        stderr: { write: () => undefined },
      })
      expect(rc).toBe(0)
      await enrol(`${agentId}-ima`, Buffer.from(out.join('')).toString('base64'))
    }, 60_000)

    afterAll(async () => {
      await v?.stop(200)
      await kdb?.close()
      await swtpm?.remove()
      if (work) rmSync(work, { recursive: true, force: true })
    })

    test('session → capabilities → evidence: every answer is what the Rust agent parses', async () => {
      const token = await authenticate()
      const caps = capabilities()
      const created = await send('POST', `/v3.0/agents/${agentId}/attestations`, caps, token)
      expect(created.status, JSON.stringify(created.doc)).toBe(201)
      expect(created.headers.get('content-type')).toBe(JSON_API)
      expect(created.headers.get('x-request-id')).toBe(created.requestId)
      // HeaderValidator::validate_201_created_response, url_selector: resolved against the base
      const location = created.headers.get('location')
      expect(location).toMatch(new RegExp(`^/v3(\\.0)?/agents/${agentId}/attestations/\\d+$`))
      const requested = attestationResponse(created.doc)
      expect(requested.map((r) => r.evidence_type)).toEqual(['tpm_quote'])
      const q = requested[0]!.chosen_parameters as Obj
      // the certification key echoed whole
      expect(q.certification_key).toEqual(
        caps.data.attributes.evidence_supported[0].capabilities.certification_keys[0],
      )
      expect(q.hash_algorithm).toBe('sha256')
      expect(q.signature_scheme).toBe('rsassa')
      const pcrs = (q.selected_subjects as Record<string, number[]>).sha256!
      const challenge = Buffer.from(q.challenge as string, 'base64')
      expect(challenge.toString('base64')).toBe(q.challenge as string) // standard base64

      // phase 2: the Rust test data's shape, filled with a real quote
      const quote = await tpm.quotePcrs(challenge, 'sha256', pcrs)
      const evidence = fixture('evidence_handling_request.json')
      evidence.data.attributes.evidence_collected = [
        {
          ...evidence.data.attributes.evidence_collected[0],
          data: {
            subject_data: Buffer.from(quote.subjectData).toString('base64'),
            message: Buffer.from(quote.attest).toString('base64'),
            signature: Buffer.from(quote.signature).toString('base64'),
          },
        },
      ]
      const sent = await send('PATCH', location!, evidence, token)
      expect(sent.status, JSON.stringify(sent.doc)).toBe(202)
      expect(sent.headers.get('content-type')).toBe(JSON_API)
      expect(sent.headers.get('x-request-id')).toBe(sent.requestId)
      const meta = evidenceHandlingResponse(sent.doc)
      expect(uint(meta, 'seconds_to_next_attestation', 'meta')).toBe(1)

      // the verifier verifies the real quote
      await until(
        async () =>
          ((await (await v.app.request(`/v2.6/agents/${agentId}`)).json()) as Json).results
            .attestation_status === 'PASS',
        5000,
        'PASS',
      )

      // 401, not 403, for a token the verifier does not know: the agent re-authenticates at once
      const unknown = `${crypto.randomUUID()}.${Buffer.alloc(32, 7).toString('base64url')}`
      for (const bad of [unknown, 'not-a-token']) {
        const r = await send('POST', `/v3.0/agents/${agentId}/attestations`, caps, bad)
        expect(r.status).toBe(401)
        expect(r.doc.errors[0].status).toBe('401')
      }
      // a new proof ends the earlier session: its token is 401 too, the new one works
      const second = await authenticate()
      await Bun.sleep(1000) // quote_interval: not premature
      const stale = await send('POST', `/v3.0/agents/${agentId}/attestations`, caps, token)
      expect(stale.status).toBe(401)
      const fresh = await send('POST', `/v3.0/agents/${agentId}/attestations`, caps, second)
      expect(fresh.status, JSON.stringify(fresh.doc)).toBe(201)
      // an expired token: 401 as well (`token_expires_at` set in the past, as by a long silence)
      await v.store.sessions.extendAgentToken(agentId, Date.now() - 3600_000)
      await until(
        async () =>
          (await send('POST', `/v3.0/agents/${agentId}/attestations`, caps, second)).status === 401,
        7000,
        '401 for the expired token',
      )
    }, 30_000)

    test('log evidence: ima_log requested with format and offset; the 202 echoes it parseably', async () => {
      const id = `${agentId}-ima`
      const token = await authenticate(id)
      const caps = capabilities()
      caps.data.attributes.evidence_supported[2].capabilities.entry_count = 0 // an empty list
      const created = await send('POST', `/v3.0/agents/${id}/attestations`, caps, token)
      expect(created.status, JSON.stringify(created.doc)).toBe(201)
      const requested = attestationResponse(created.doc)
      expect(requested.map((r) => r.evidence_type)).toEqual(['tpm_quote', 'ima_log'])
      const log = requested[1]!.chosen_parameters as Obj
      expect(chosenParameters(log, 'ima_log')).toBe('log')
      expect(log).toMatchObject({ format: 'text/plain', starting_offset: 0 })
      const q = requested[0]!.chosen_parameters as Obj
      const pcrs = (q.selected_subjects as Record<string, number[]>).sha256!
      expect(pcrs).toContain(10)
      const quote = await tpm.quotePcrs(
        Buffer.from(q.challenge as string, 'base64'),
        'sha256',
        pcrs,
      )
      const evidence = fixture('evidence_handling_request.json')
      const [quoteItem, , imaItem] = evidence.data.attributes.evidence_collected
      quoteItem.data = {
        subject_data: Buffer.from(quote.subjectData).toString('base64'),
        message: Buffer.from(quote.attest).toString('base64'),
        signature: Buffer.from(quote.signature).toString('base64'),
      }
      imaItem.data = { entries: '', entry_count: 0 }
      evidence.data.attributes.evidence_collected = [quoteItem, imaItem]
      const sent = await send('PATCH', created.headers.get('location')!, evidence, token)
      expect(sent.status, JSON.stringify(sent.doc)).toBe(202)
      const meta = evidenceHandlingResponse(sent.doc)
      expect(uint(meta, 'seconds_to_next_attestation', 'meta')).toBe(1)
      expect(sent.doc.data.attributes.evidence[1].evidence_type).toBe('ima_log')
    }, 30_000)
  })
}
