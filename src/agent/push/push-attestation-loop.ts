/**
 * The push agent's attestation cycle after registration, rust-keylime's state machine
 * (`keylime-push-model-agent/src/state_machine.rs`, push-protocol.md §1.4):
 *
 * Negotiating — `POST /v3.0/agents/:id/attestations` with the capabilities; only a **201**
 * goes on, to the URL in its `Location` header (resolved against `verifier_url`, and refused
 * unless it stays on the verifier's origin: the bearer token goes there).
 * Attesting — `PATCH` that URL with the evidence `evidence_requested` asks for; only a **202**
 * succeeds, and the agent then waits `meta.seconds_to_next_attestation` (missing or bad:
 * `attestation_interval_seconds`; at least 1 s).
 * A **401** in either step drops the token and starts over at once (new session). Anything
 * else, a malformed answer or a TPM error fails the cycle: wait `attestation_interval_seconds`,
 * then negotiate again. Single requests are retried with back-off inside {@link VerifierHttp}.
 *
 * Unlike rust-keylime, immediate re-authentication is bounded: after 3 consecutive 401s the
 * cycle counts as failed and waits, so a verifier that refuses every token is not hammered.
 *
 * @module
 */

import { isAgentError } from '../errors.ts'
import { buildCapabilities, type EvidenceSources } from './build-capabilities.ts'
import { collectEvidence, parseEvidenceRequested } from './collect-evidence.ts'
import { badAnswer, readObject } from './read-answer.ts'
import type { SessionAuth } from './session-auth.ts'
import type { Sleep, VerifierHttp } from './verifier-http.ts'

/** How one cycle ended. */
export type CycleOutcome =
  /** 202: evidence accepted; `waitMs` is the verifier's next-attestation delay. */
  | { kind: 'accepted'; waitMs: number; location: string }
  /** 401: token dropped, authenticate again at once. */
  | { kind: 'reauth'; waitMs: 0; step: 'negotiate' | 'attest' }
  /** Anything else: wait the interval, then negotiate again. */
  | { kind: 'failed'; waitMs: number; error: string; code: string }

/** Options of {@link PushAttestationLoop}. */
export interface PushAttestationLoopOptions {
  /** The agent id. */
  agentId: string
  /** `verifier_url`, no trailing slash. */
  verifierUrl: string
  /** The verifier client. */
  http: VerifierHttp
  /** The session (bearer token). */
  auth: SessionAuth
  /** TPM and logs. */
  sources: EvidenceSources
  /** `attestation_interval_seconds`. */
  intervalSeconds: number
  /** Sleep between cycles (rejects when stopping). */
  sleep: Sleep
  /** Log lines (never tokens or bodies). */
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void
}

/** Longest wait taken from `seconds_to_next_attestation` (one day). */
const MAX_NEXT_SECONDS = 86_400
/** Consecutive 401s answered by an immediate re-authentication. */
const MAX_IMMEDIATE_REAUTH = 3

/** The attestation cycle of one push agent. */
export class PushAttestationLoop {
  readonly #o: PushAttestationLoopOptions
  #reauths = 0

  constructor(opts: PushAttestationLoopOptions) {
    this.#o = opts
  }

  /** Runs cycles until `signal` aborts (the sleep then rejects with `ERR_AGENT_STOPPED`). */
  async run(signal?: AbortSignal): Promise<void> {
    try {
      while (signal?.aborted !== true) {
        const outcome = await this.cycle()
        if (outcome.waitMs > 0) await this.#o.sleep(outcome.waitMs)
      }
    } catch (err) {
      if (!isAgentError(err, 'ERR_AGENT_STOPPED')) throw err
    }
  }

  /** One Negotiating → Attesting pass; never throws except `ERR_AGENT_STOPPED`. */
  async cycle(): Promise<CycleOutcome> {
    const interval = this.#o.intervalSeconds * 1000
    try {
      const outcome = await this.#negotiateAndAttest(interval)
      if (outcome.kind !== 'reauth') this.#reauths = 0
      else if (++this.#reauths > MAX_IMMEDIATE_REAUTH) {
        this.#reauths = 0
        return this.#failed('ERR_AGENT_PUSH_STATUS', `${MAX_IMMEDIATE_REAUTH} times 401`, interval)
      }
      return outcome
    } catch (err) {
      if (isAgentError(err, 'ERR_AGENT_STOPPED')) throw err
      this.#reauths = 0
      const code = isAgentError(err) ? err.code : 'ERR_AGENT_PUSH'
      return this.#failed(code, err instanceof Error ? err.message : String(err), interval)
    }
  }

  #failed(code: string, error: string, waitMs: number): CycleOutcome {
    this.#o.log?.('warn', 'attestation failed', { code, error, retry_in_s: waitMs / 1000 })
    return { kind: 'failed', waitMs, error, code }
  }

  async #negotiateAndAttest(interval: number): Promise<CycleOutcome> {
    const { http, auth, sources, verifierUrl, agentId } = this.#o
    const base = `${verifierUrl}/v3.0/agents/${encodeURIComponent(agentId)}/attestations`
    const token = await auth.token()
    const created = await http.send('POST', base, buildCapabilities(sources), token)
    if (created.status === 401) return this.#reauth('negotiate')
    if (created.status !== 201) {
      return this.#failed('ERR_AGENT_PUSH_STATUS', `negotiation: HTTP ${created.status}`, interval)
    }
    const location = this.#location(created.headers.get('location'))
    const requested = parseEvidenceRequested(created.body)
    const evidence = await collectEvidence(requested, sources)
    const accepted = await http.send('PATCH', location, evidence, token)
    if (accepted.status === 401) return this.#reauth('attest')
    if (accepted.status !== 202) {
      return this.#failed('ERR_AGENT_PUSH_STATUS', `evidence: HTTP ${accepted.status}`, interval)
    }
    const next = nextAttestationSeconds(accepted.body)
    // a floor of 1 s: a verifier answering 0 every time must not get a busy loop
    const waitMs = next === undefined ? interval : Math.max(1, next) * 1000
    this.#o.log?.('info', 'evidence accepted', {
      next_attestation_in_s: waitMs / 1000,
      ...(next === undefined ? { note: 'no seconds_to_next_attestation' } : {}),
    })
    return { kind: 'accepted', waitMs, location }
  }

  #reauth(step: 'negotiate' | 'attest'): CycleOutcome {
    this.#o.auth.clear()
    this.#o.log?.('info', 'token refused (401), authenticating again', { step })
    return { kind: 'reauth', waitMs: 0, step }
  }

  /** The 201's `Location`, resolved against the verifier and kept on its origin. */
  #location(header: string | null): string {
    if (header === null || header.length === 0) badAnswer('201 Location', 'is missing')
    if (header.length > 2048) badAnswer('201 Location', 'is too long')
    let url: URL
    try {
      url = new URL(header, `${this.#o.verifierUrl}/`)
    } catch {
      return badAnswer('201 Location', 'is not a URL')
    }
    if (url.origin !== new URL(this.#o.verifierUrl).origin) {
      badAnswer('201 Location', 'points away from verifier_url')
    }
    return url.href
  }
}

/** `meta.seconds_to_next_attestation` of a 202, or undefined when missing or invalid. */
export function nextAttestationSeconds(body: unknown): number | undefined {
  try {
    const meta = readObject(readObject(body, 'body').meta, 'meta')
    const s = meta.seconds_to_next_attestation
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 0) return undefined
    return Math.min(s, MAX_NEXT_SECONDS)
  } catch {
    return undefined
  }
}
