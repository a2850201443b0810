/**
 * The push attestation resource (push-protocol.md §1.5.5–§1.5.8, upstream
 * `web/verifier/attestation_controller.py`): capabilities (`POST`, 201 with `Location`), evidence
 * (`PATCH`, 202 before verification, which runs in the background), and the admin reads.
 *
 * @module
 */
import type { Logger } from '../../log/logger.ts'
import { parseTpmPolicy } from '../../protocol/tpm-policy.ts'
import { RUNTIME_POLICY_GENERATOR } from '../../ima/runtime-policy.ts'
import { parseMbPolicy } from '../checks/check-quote.ts'
import { tpmPolicyText } from '../loop/agent-record.ts'
import type { StoredAttestation } from '../store/attestations.ts'
import type { AgentRow } from '../store/store.ts'
import { isObj, own } from './body-reader.ts'
import { type SelectionContext, selectEvidence } from './capabilities.ts'
import { invalidData, PushError } from './json-api.ts'
import { readEvidence } from './read-evidence.ts'
import { isoMicros } from '../../protocol/iso-micros.ts'
import { renderAttestation } from './render-attestation.ts'
import { type VerifyDeps, verifyAttestation } from './verify-attestation.ts'

/** Settings of {@link AttestationsApi}. */
export interface AttestationsApiOptions extends VerifyDeps {
  /** `quote_interval` in seconds (rate limit, `seconds_to_next_attestation`). */
  quoteInterval: number
  /** `challenge_lifetime` in seconds. */
  challengeLifetime: number
  /** `verification_timeout` in seconds (0: the in-progress check is inert, as upstream). */
  verificationTimeout: number
  log: Logger
  /** The clock (tests). */
  now?: () => number
}

/** A rendered answer: status, JSON:API body parts, extra headers. */
export interface PushAnswer {
  status: number
  /** A resource, or a list of them. */
  data: Record<string, unknown> | Record<string, unknown>[]
  meta?: Record<string, unknown>
  headers?: Record<string, string>
}

const notFound = (what: string) => new PushError(404, 'not_found', what)

/** The `data.attributes` of a JSON:API document of type `attestation`. */
function attributesOf(body: Record<string, unknown>): Record<string, unknown> {
  const data = own(body, 'data')
  if (!isObj(data)) throw invalidData([{ pointer: '/data', detail: 'is required' }])
  if (own(data, 'type') !== 'attestation')
    throw invalidData([{ pointer: '/data/type', detail: 'must be "attestation"' }])
  const attributes = own(data, 'attributes')
  if (!isObj(attributes))
    throw invalidData([{ pointer: '/data/attributes', detail: 'is required' }])
  return attributes
}

/** The push attestation operations. */
export class AttestationsApi {
  readonly #o: AttestationsApiOptions
  readonly #now: () => number
  readonly #running = new Set<Promise<void>>()

  constructor(o: AttestationsApiOptions) {
    this.#o = o
    this.#now = o.now ?? Date.now
  }

  /** Resolves when every background verification started so far has finished (tests, stop). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running])
  }

  /**
   * The push agent `agentId`. A pull agent is not found here: it never pushes (keylime-tests
   * `attestation-mode-mismatch`), and, being push, an agent may always try to attest, even with
   * `accept_attestations` off (so it can recover from a timeout), as upstream.
   */
  async #agent(agentId: string): Promise<AgentRow> {
    const row = await this.#o.store.agents.getAgent(agentId)
    if (row === undefined) throw notFound(`Agent ${agentId} not found`)
    if (row.mode !== 'push') throw notFound(`Agent ${agentId} is not enrolled in push mode`)
    return row
  }

  /** `POST …/attestations`: checks the offer, chooses the evidence, answers 201. */
  async create(agentId: string, body: Record<string, unknown>, base: string): Promise<PushAnswer> {
    const o = this.#o
    const row = await this.#agent(agentId)
    const store = o.store.attestations
    const now = this.#now()
    const latest = await store.latest(agentId)
    if (latest !== undefined) this.#checkPace(latest, now)
    const attributes = attributesOf(body)
    const selection = selectEvidence(attributes, await this.#context(row))
    const index = latest === undefined ? 0 : latest.index + 1
    const receivedAt = isoMicros(now)
    const created = await store.create(
      {
        agent_id: agentId,
        index,
        stage: 'awaiting_evidence',
        evaluation: 'pending',
        system_info__boot_time: selection.bootTime,
        capabilities_received_at: receivedAt,
        challenges_expire_at: isoMicros(now + o.challengeLifetime * 1000),
      },
      selection.items,
    )
    if (!created) throw new PushError(409, 'conflict', 'A concurrent attestation was created')
    const stored = await store.get(agentId, index)
    if (stored === undefined) throw notFound('Attestation not found')
    const self = `${base}/${index}`
    return {
      status: 201,
      data: {
        type: 'attestation',
        attributes: renderAttestation(stored, 'requested'),
        links: { self },
      },
      headers: { location: self },
    }
  }

  /** 503 while the latest is still being verified (with a timeout), 429 within a quote interval. */
  #checkPace(latest: StoredAttestation['row'], now: number): void {
    const o = this.#o
    const received = latest.evidence_received_at ?? latest.capabilities_received_at
    const receivedMs = Date.parse(received)
    if (latest.stage === 'evaluating_evidence' && o.verificationTimeout > 0) {
      const decision = receivedMs + o.verificationTimeout * 1000
      if (decision > now) {
        const retryAfter = Math.ceil((decision - now) / 1000)
        throw new PushError(503, 'verification_in_progress', 'Verification in progress', {
          retryAfter,
        })
      }
    }
    const next = receivedMs + o.quoteInterval * 1000
    if (now < next) {
      const retryAfter = Math.max(1, Math.ceil((next - now) / 1000))
      throw new PushError(
        429,
        'premature_attestation',
        `Attestation attempted too soon: wait ${retryAfter} s`,
        { retryAfter },
      )
    }
  }

  /** What the selection needs to know of the agent. */
  async #context(row: AgentRow): Promise<SelectionContext> {
    const policies = this.#o.store.policies
    let tpmPolicyPcrs: number[] = []
    try {
      tpmPolicyPcrs = [...parseTpmPolicy(tpmPolicyText(row.tpm_policy) || '{}').pcrs]
        .filter(([, allowed]) => allowed.length > 0)
        .map(([n]) => n)
    } catch {
      // a stored policy that no longer parses constrains nothing here; verification reports it
    }
    const ima =
      row.ima_policy_id === null ? undefined : await policies.getAllowlistById(row.ima_policy_id)
    const mb =
      row.mb_policy_id === null ? undefined : await policies.getMbPolicyById(row.mb_policy_id)
    const last = await this.#o.store.attestations.lastPassed(row.agent_id)
    const imaItem = last?.items.find((i) => i.evidence_type === 'ima_log')
    return {
      tpmPolicyPcrs,
      mbActive: parseMbPolicy(mb?.mb_policy ?? null).active,
      imaActive: (ima?.generator ?? 0) > RUNTIME_POLICY_GENERATOR.EmptyAllowList,
      acceptHash: listOf(row.accept_tpm_hash_algs),
      acceptSign: listOf(row.accept_tpm_signing_algs),
      akTpm: row.ak_tpm ?? '',
      lastPassed:
        last === undefined
          ? undefined
          : {
              bootTime: last.row.system_info__boot_time,
              imaNextEntry:
                imaItem === undefined
                  ? undefined
                  : (imaItem.chosen_parameters__starting_offset ?? 0) +
                    (imaItem.results__certified_entry_count ?? 0),
            },
    }
  }

  /** `PATCH …/attestations/latest|:index`: stores the evidence, answers 202, verifies after. */
  async submit(
    agentId: string,
    which: string,
    body: Record<string, unknown>,
    self: string,
  ): Promise<PushAnswer> {
    const o = this.#o
    await this.#agent(agentId)
    const store = o.store.attestations
    const latest = await store.get(agentId)
    if (latest === undefined) throw notFound('No attestation found for this agent')
    if (which !== 'latest' && which !== String(latest.row.index)) {
      throw new PushError(
        403,
        'old_attestation',
        'Only the latest attestation may receive evidence',
      )
    }
    if (latest.row.stage !== 'awaiting_evidence') {
      throw new PushError(
        403,
        'evidence_immutable',
        'Evidence was already received for this attestation',
      )
    }
    const now = this.#now()
    if (now >= Date.parse(latest.row.challenges_expire_at ?? '')) {
      throw new PushError(
        403,
        'challenges_expired',
        'The challenges of this attestation have expired',
      )
    }
    const updates = readEvidence(attributesOf(body), latest.items)
    const index = latest.row.index
    if (!(await store.submitEvidence(agentId, index, isoMicros(now), updates))) {
      throw new PushError(
        403,
        'evidence_immutable',
        'Evidence was already received for this attestation',
      )
    }
    const stored = await store.get(agentId, index)
    if (stored === undefined) throw notFound('Attestation not found')
    const run = verifyAttestation(o, agentId, index).finally(() => this.#running.delete(run))
    this.#running.add(run)
    const receivedMs = Date.parse(stored.row.evidence_received_at ?? '') || now
    const seconds = Math.max(
      0,
      Math.round((receivedMs + o.quoteInterval * 1000 - this.#now()) / 1000),
    )
    return {
      status: 202,
      data: {
        type: 'attestation',
        attributes: renderAttestation(stored, 'state'),
        links: { self },
      },
      meta: { seconds_to_next_attestation: seconds },
    }
  }

  /** `GET …/attestations`. */
  async list(agentId: string, base: string): Promise<PushAnswer> {
    await this.#agent(agentId)
    const all = await this.#o.store.attestations.list(agentId)
    return {
      status: 200,
      data: all.map((a) => ({
        type: 'attestation',
        attributes: renderAttestation(a, 'state'),
        links: { self: `${base}/${a.row.index}` },
      })),
    }
  }

  /** `GET …/attestations/latest|:index`. */
  async get(agentId: string, which: string, base: string): Promise<PushAnswer> {
    await this.#agent(agentId)
    const index = which === 'latest' ? undefined : indexOf(which)
    const a = await this.#o.store.attestations.get(agentId, index)
    if (a === undefined) throw notFound('Attestation not found')
    return {
      status: 200,
      data: {
        type: 'attestation',
        attributes: renderAttestation(a, 'state'),
        links: { self: `${base}/${a.row.index}` },
      },
    }
  }
}

/** An attestation index of a path (`404` for anything else). */
function indexOf(text: string): number {
  if (!/^\d{1,9}$/.test(text)) throw notFound('Attestation not found')
  return Number(text)
}

function listOf(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : []
}
