/**
 * A simulated push agent (API 3.0, docs/push-mode.md): what src/agent/push does, over a
 * {@link SoftTpm} and `fetch`, one round at a time so that thousands share one event loop (the
 * caller schedules rounds: {@link PushFleet}). A round is: a bearer token if none is held
 * (`POST /v3.0/sessions`, TPM2_Certify proof, `PATCH /v3.0/sessions/:id`), the capabilities
 * (`POST …/attestations`, 201 + `Location`) and the evidence (`PATCH` there, 202 with
 * `seconds_to_next_attestation`). The request bodies and answer parsing are src/agent/push's own.
 *
 * Faults (one per agent, every round): `bad-signature` (a bit of the quote's TPMT_SIGNATURE
 * flipped), `pcr-change` (PCR15, pinned by the `tpm_policy`, extended before every quote),
 * `stale-evidence` (the quote is made over the previous round's challenge), `expired-token`
 * (the bearer token sent is not a live one: 401, then a new session), `silent` (never attests).
 *
 * @module
 */

import { randomBytes } from 'node:crypto'
import { buildCapabilities, type PushTpm } from '../../../src/agent/push/build-capabilities.ts'
import {
  collectEvidence,
  parseEvidenceRequested,
} from '../../../src/agent/push/collect-evidence.ts'
import { nextAttestationSeconds } from '../../../src/agent/push/push-attestation-loop.ts'
import { parseChallenge, parseToken } from '../../../src/agent/push/session-auth.ts'
import type { PushQuote } from '../../../src/agent/tpm/hardware-agent-tpm.ts'
import type { EncAlg, HashAlg, SignAlg } from '../../../src/tpm/constants.ts'
import type { ImaLog } from './ima-log.ts'
import { IMA_PCR } from './ima-log.ts'
import { FAULT_PCR } from './sim-agent.ts'
import type { SoftTpm } from './soft-tpm.ts'

/** Faults of a push agent (see the module header). */
export type PushFault =
  'bad-signature' | 'pcr-change' | 'stale-evidence' | 'expired-token' | 'silent'

/** The fault names, as the CLI spells them. */
export const PUSH_FAULTS: readonly PushFault[] = [
  'bad-signature',
  'pcr-change',
  'stale-evidence',
  'expired-token',
  'silent',
]

/** How one round ended. */
export type PushRoundOutcome =
  { kind: 'accepted'; nextMs: number } | { kind: 'error'; error: string; retryMs?: number }

/** What every agent of a fleet shares. */
export interface PushSimShared {
  /** Verifier base URL (`https://127.0.0.1:port`). */
  verifierUrl: string
  /** `fetch` TLS options (cv_ca `cacert.crt`; no client certificate: push agents have none). */
  tls: { ca: string; checkServerIdentity: () => undefined }
  /** The IMA list agents grow into, `imaPerRound` entries a round. */
  ima?: ImaLog
  /** IMA entries added per round (0: the list stays at its first entry). */
  imaPerRound: number
}

const JSON_API = 'application/vnd.api+json'

/** One push agent. */
export class PushSimAgent implements PushTpm {
  readonly hashAlg: HashAlg
  readonly signAlg: SignAlg
  readonly encAlg: EncAlg
  readonly akTpm2b: Uint8Array
  readonly pcrAllocation: ReadonlyMap<HashAlg, readonly number[]>
  /** Rounds accepted (202). */
  accepted = 0
  #token: string | undefined
  #tokenRenewAt = 0
  #imaEntries = 1
  #lastChallenge: Uint8Array | undefined
  readonly #shared: PushSimShared

  readonly uuid: string
  readonly tpm: SoftTpm
  readonly fault: PushFault | undefined

  constructor(uuid: string, tpm: SoftTpm, shared: PushSimShared, fault?: PushFault) {
    this.uuid = uuid
    this.tpm = tpm
    this.fault = fault
    this.#shared = shared
    this.hashAlg = tpm.hashAlg
    this.encAlg = tpm.akType
    this.signAlg = tpm.akType === 'rsa' ? 'rsassa' : 'ecdsa'
    this.akTpm2b = tpm.akTpm2b
    this.pcrAllocation = new Map([[tpm.hashAlg, Array.from({ length: 24 }, (_, i) => i)]])
    if (shared.ima !== undefined) {
      tpm.restorePcr(tpm.hashAlg, IMA_PCR, shared.ima.pcr10After(1, tpm.hashAlg))
    }
  }

  certifyAk(qualifyingData: Uint8Array): Promise<{ attest: Uint8Array; signature: Uint8Array }> {
    return Promise.resolve(this.tpm.certifyAk(qualifyingData))
  }

  quotePcrs(challenge: Uint8Array, bank: HashAlg, pcrs: readonly number[]): Promise<PushQuote> {
    let nonce = challenge
    if (this.fault === 'stale-evidence') nonce = this.#lastChallenge ?? randomBytes(16)
    this.#lastChallenge = challenge
    if (this.fault === 'pcr-change') this.tpm.extendData(FAULT_PCR, randomBytes(32))
    const q = this.tpm.quote(nonce, pcrs, bank)
    const signature = new Uint8Array(q.signature)
    if (this.fault === 'bad-signature') signature[signature.byteLength - 1]! ^= 0x01
    return Promise.resolve({ attest: q.attest, signature, subjectData: q.pcrBlob })
  }

  /** The IMA list as far as this agent has grown it. */
  #imaSource() {
    const ima = this.#shared.ima
    if (ima === undefined) return undefined
    const n = Math.min(this.#imaEntries, ima.lines.length)
    return {
      entryCount: () => n,
      entriesFrom: (offset: number) => {
        if (offset >= n) return { text: '', count: 0 }
        return {
          text: ima.text.slice(ima.offsetOf(offset), ima.offsetOf(n)),
          count: n - offset,
        }
      },
    }
  }

  async #send(
    method: string,
    url: string,
    body: unknown,
    token?: string,
  ): Promise<{ status: number; body: unknown; headers: Headers }> {
    const headers: Record<string, string> = { 'content-type': JSON_API, accept: JSON_API }
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    const res = await fetch(url, {
      method,
      headers,
      body: JSON.stringify(body),
      tls: this.#shared.tls,
    } as RequestInit)
    const text = await res.text()
    let parsed: unknown
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      parsed = undefined
    }
    return { status: res.status, body: parsed, headers: res.headers }
  }

  /** A bearer token: the held one unless near its end, else a new session. */
  async #authenticate(): Promise<string | PushRoundOutcome> {
    if (this.#token !== undefined && Date.now() < this.#tokenRenewAt) return this.#token
    const base = this.#shared.verifierUrl
    const created = await this.#send('POST', `${base}/v3.0/sessions`, {
      data: {
        type: 'session',
        attributes: {
          agent_id: this.uuid,
          authentication_supported: [
            { authentication_class: 'pop', authentication_type: 'tpm_pop' },
          ],
        },
      },
    })
    if (created.status !== 200) return { kind: 'error', error: `session_post_${created.status}` }
    const { sessionId, challenge } = parseChallenge(created.body)
    const proof = this.tpm.certifyAk(challenge)
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
    const answered = await this.#send('PATCH', `${base}/v3.0/sessions/${sessionId}`, {
      data: {
        type: 'session',
        id: sessionId,
        attributes: {
          agent_id: this.uuid,
          authentication_provided: [
            {
              authentication_class: 'pop',
              authentication_type: 'tpm_pop',
              data: { message: b64(proof.attest), signature: b64(proof.signature) },
            },
          ],
        },
      },
    })
    if (answered.status !== 200) return { kind: 'error', error: `session_patch_${answered.status}` }
    const held = parseToken(answered.body, Date.now())
    this.#token = held.token
    this.#tokenRenewAt = held.renewAt
    return held.token
  }

  /** One attestation round (see the module header). Never throws. */
  async round(): Promise<PushRoundOutcome> {
    try {
      const auth = await this.#authenticate()
      if (typeof auth !== 'string') return auth
      // a token the verifier does not hold: a 401, then the next round authenticates again
      const token =
        this.fault === 'expired-token'
          ? `${auth.split('.')[0]}.${randomBytes(32).toString('base64url')}`
          : auth
      const base = this.#shared.verifierUrl
      const src = {
        tpm: this,
        ima: this.#imaSource(),
        bootTime: 1_700_000_000,
        serverIdentifier: 'ak',
        uefiEvidenceVersion: '2.1',
      }
      const created = await this.#send(
        'POST',
        `${base}/v3.0/agents/${this.uuid}/attestations`,
        buildCapabilities(src),
        token,
      )
      if (created.status === 401) this.#token = undefined
      if (created.status !== 201) {
        const retry = Number(created.headers.get('retry-after'))
        return {
          kind: 'error',
          error: `capabilities_${created.status}`,
          ...(Number.isFinite(retry) && retry > 0 ? { retryMs: retry * 1000 } : {}),
        }
      }
      const location = created.headers.get('location') ?? ''
      // the TPM state the quote shows: PCR10 after the entries this round sends
      if (this.#shared.ima !== undefined) {
        const ima = this.#shared.ima
        this.#imaEntries = Math.min(ima.lines.length, this.#imaEntries + this.#shared.imaPerRound)
        this.tpm.restorePcr(this.hashAlg, IMA_PCR, ima.pcr10After(this.#imaEntries, this.hashAlg))
      }
      src.ima = this.#imaSource()
      const evidence = await collectEvidence(parseEvidenceRequested(created.body), src)
      const accepted = await this.#send('PATCH', new URL(location, base).href, evidence, token)
      if (accepted.status !== 202) return { kind: 'error', error: `evidence_${accepted.status}` }
      this.accepted++
      const s = nextAttestationSeconds(accepted.body)
      return { kind: 'accepted', nextMs: (s ?? 2) * 1000 }
    } catch (err) {
      const code = (err as { code?: unknown }).code
      return { kind: 'error', error: typeof code === 'string' ? code : 'exception' }
    }
  }
}
