/**
 * One simulated Keylime agent (pull model): the real agent's code (src/agent: registration
 * client, agent REST API 2.1–2.6, U/V/K key exchange, revocation check) over a {@link SoftTpm}
 * instead of a TPM (wire-formats §1, §2, §4, §5). The HTTP side is a plain `(Request) → Response`
 * handler so a fleet can mount thousands of agents behind one listener; TLS is the fleet's job.
 *
 * Routes (`/v{2.1…2.6}` prefix; `agent/info` from 2.2):
 * `GET /version`, `GET keys/pubkey`, `GET quotes/identity?nonce`,
 * `GET quotes/integrity?nonce&mask&partial[&ima_ml_entry]`, `POST keys/ukey`, `POST keys/vkey`,
 * `GET keys/verify?challenge`, `POST notifications/revocation`, `GET agent/info`.
 * Every answer is the `{code, status, results}` envelope; ukey, vkey and revocation answer
 * `results: null` as rust-keylime does.
 *
 * Real logs (tests of the IMA and measured-boot stages): {@link SimAgent.serveImaList} serves a given
 * ASCII IMA list (a real guest's `ascii_runtime_measurements`, growing between calls) with PCR 10
 * set by replaying it, {@link SimAgent.serveMbLog} serves a UEFI event log as `mb_measurement_list`
 * (when PCR 0 is in the mask, as rust-keylime does) with PCRs 0–23 set to its replayed values, and
 * {@link SimAgent.reboot} models a reboot: new `boottime`, PCRs reset, the logs restarting at 0.
 *
 * Failure injection ({@link AgentFaults}) lets a verifier test see each class of failure: a bad
 * signature, an unexpected PCR change (PCR15, permanent, as a real extend would be), a wrong nonce
 * in the quote, slow answers, and a dead agent (connection reset).
 *
 * @module
 */

import { randomBytes } from 'node:crypto'
import { unzipSync } from 'fflate'
import type { AgentTpm } from '../../../src/agent/agent-tpm.ts'
import {
  AgentApi,
  type AgentApiOptions,
  type MeasurementList,
  type RevocationNotice,
} from '../../../src/agent/api/agent-api.ts'
import { decryptPayload } from '../../../src/agent/api/decrypt-payload.ts'
import { KeyExchange } from '../../../src/agent/api/key-exchange.ts'
import { AgentError } from '../../../src/agent/errors.ts'
import { registerAgent } from '../../../src/agent/registrar-client.ts'
import { AGENT_API_VERSIONS } from '../../../src/protocol/api-versions.ts'
import { replayImaList } from '../../../src/ima/replay-ima-list.ts'
import { parseEventLog } from '../../../src/mb/parse-event-log.ts'
import { replayEventLog } from '../../../src/mb/replay-event-log.ts'
import { FleetError } from './errors.ts'
import type { ImaLog } from './ima-log.ts'
import { IMA_PCR } from './ima-log.ts'
import { NK_BINDING_PCR, type SoftTpm } from './soft-tpm.ts'

export { AGENT_API_VERSIONS, newestCommonVersion } from '../../../src/protocol/api-versions.ts'

/** The PCR the `pcrChange` fault extends (a static PCR a `tpm_policy` typically pins). */
export const FAULT_PCR = 15

/**
 * Failure-injection knobs. Rates are per answered quote, 0…1 (1 = every quote).
 */
export interface AgentFaults {
  /** Flip a bit of the TPMT_SIGNATURE (→ ERR_QUOTE_SIGNATURE at the verifier). */
  badSignature?: number
  /** Extend PCR15 with random data before quoting; permanent (→ tpm_policy mismatch). */
  pcrChange?: number
  /** Quote a nonce other than the one asked for (→ ERR_QUOTE_NONCE). */
  wrongNonce?: number
  /** Delay every answer by this many milliseconds. */
  slowMs?: number
  /** Reset every connection instead of answering. */
  dead?: boolean
  /** Add this many bytes (a `padding` field) to every integrity-quote answer. */
  answerPadding?: number
  /** Serve, and bind to PCR16, this text as the NK PEM (e.g. the real one wrapped in junk). */
  nkPem?: string
}

/** Counters an agent keeps for the fleet summary. */
export interface AgentStats {
  /** Identity quotes answered. */
  identityQuotes: number
  /** Integrity quotes answered (an attestation each). */
  integrityQuotes: number
  /** Answers with a 4xx status. */
  errors: number
  /** Faults actually injected. */
  faultsInjected: number
  /** `performance.now()` of the last integrity quote, or 0. */
  lastQuoteAt: number
}

/** A revocation notice as received. */
export interface ReceivedRevocation {
  /** The parsed `msg`, or the raw string if it is not JSON. */
  msg: unknown
  /** True if verified with the revocation certificate; false if no certificate is loaded. */
  verified: boolean
}

/** One `quotes/integrity` answer that carried IMA entries: what was asked and what was sent. */
export interface ImaRequestRecord {
  /** `ima_ml_entry` as requested (0 when absent). */
  requested: number
  /** `ima_measurement_list_entry` answered (0 when the agent restarted at the beginning). */
  entry: number
  /** Number of lines sent. */
  lines: number
}

/** How many {@link SimAgent.imaRequests} an agent keeps. */
export const IMA_REQUEST_HISTORY = 1000

/** Options of {@link SimAgent}. */
export interface SimAgentOptions {
  /** Agent UUID (`[\w.-]+`). */
  uuid: string
  /** The agent's TPM. */
  tpm: SoftTpm
  /** Contact address registered with the registrar. */
  contactIp: string
  /** Contact port registered with the registrar (may be set later, before {@link SimAgent.register}). */
  contactPort?: number
  /** The agent's server certificate PEM as registered (`mtls_cert`), or `disabled`. */
  mtlsCertPem: string
  /** Shared synthetic IMA list; PCR10 starts at its replay value. */
  imaLog?: ImaLog
  /** Revocation certificate (PEM) to verify notices with; else it is taken from a payload zip. */
  revocationCertPem?: string
  /** Injected faults (mutable at run time through {@link SimAgent.faults}). */
  faults?: AgentFaults
  /** Seconds since the epoch sent as `boottime`. */
  bootTime?: number
  /** Enabled API versions (default all of {@link AGENT_API_VERSIONS}). */
  apiVersions?: readonly string[]
}

/** Outcome of {@link SimAgent.register}. */
export interface RegistrationResult {
  /** The registrar API version used. */
  apiVersion: string
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function hit(rate: number | undefined): boolean {
  return rate !== undefined && rate > 0 && (rate >= 1 || Math.random() < rate)
}

/** A response whose body errors at once: the server resets the connection (a "dead" agent). */
function resetConnection(): Response {
  return new Response(
    new ReadableStream({
      start(c) {
        c.error(undefined)
      },
    }),
  )
}

/** The simulated agent: src/agent's API and registration over a SoftTpm, plus faults. */
export class SimAgent {
  /** Agent UUID. */
  readonly uuid: string
  /** Its soft TPM. */
  readonly tpm: SoftTpm
  /** Contact IP. */
  readonly contactIp: string
  /** Contact port (set by the fleet once its listener is bound). */
  contactPort: number
  /** Registered `mtls_cert`. */
  readonly mtlsCertPem: string
  /** Faults; change at run time to inject failures. */
  faults: AgentFaults
  /** Counters. */
  readonly stats: AgentStats = {
    identityQuotes: 0,
    integrityQuotes: 0,
    errors: 0,
    faultsInjected: 0,
    lastQuoteAt: 0,
  }
  /** Revocation notices received, oldest first. */
  readonly revocations: ReceivedRevocation[] = []
  /** The decrypted payload once K has been derived (undefined before, or if none was sent). */
  payload: Uint8Array | undefined
  /** Registrar API version used at registration. */
  registrarApiVersion: string | undefined
  /** IMA answers, oldest first (the last {@link IMA_REQUEST_HISTORY}). */
  readonly imaRequests: ImaRequestRecord[] = []
  readonly #apiVersions: readonly string[]
  readonly #agentTpm: AgentTpm
  readonly #keys: KeyExchange
  #api: AgentApi
  readonly #apiOptions: AgentApiOptions
  readonly #imaLog: ImaLog | undefined
  #imaText: { lines: string[]; offsets: number[]; text: string } | undefined
  #mbLog: Uint8Array | undefined
  #revocationPem: string | undefined

  constructor(opts: SimAgentOptions) {
    if (!/^[\w.-]+$/.test(opts.uuid)) throw new FleetError('ERR_FLEET_CONFIG', 'bad agent UUID')
    this.uuid = opts.uuid
    this.tpm = opts.tpm
    this.contactIp = opts.contactIp
    this.contactPort = opts.contactPort ?? 0
    this.mtlsCertPem = opts.mtlsCertPem
    this.faults = { ...opts.faults }
    this.#apiVersions = opts.apiVersions ?? AGENT_API_VERSIONS
    if (opts.imaLog !== undefined) {
      for (const bank of this.tpm.banks) {
        const v = opts.imaLog.pcr10(bank)
        if (v !== undefined) this.tpm.restorePcr(bank, IMA_PCR, v)
      }
    }
    const tpm = this.tpm
    const faults = () => this.faults
    this.#agentTpm = {
      hashAlg: tpm.hashAlg,
      encAlg: tpm.ekType,
      signAlg: tpm.akType === 'rsa' ? 'rsassa' : 'ecdsa',
      ekTpm2b: tpm.ekTpm2b,
      akTpm2b: tpm.akTpm2b,
      ekCertPem: tpm.ekCertPem,
      get nkPem() {
        return faults().nkPem ?? tpm.nkPem
      },
      akHandle: 0x81000000,
      quote: async (nonce, pcrs) => this.#quote(nonce, pcrs),
      activateCredential: async (blob) => tpm.activateCredential(blob),
      decryptWithNk: (ct) => {
        try {
          return tpm.decryptWithNk(ct)
        } catch (cause) {
          throw new AgentError('ERR_AGENT_REQUEST', 'key does not decrypt with the NK', { cause })
        }
      },
    }
    this.#keys = new KeyExchange({
      uuid: this.uuid,
      decrypt: (ct) => this.#agentTpm.decryptWithNk(ct),
      onKey: (k, payload) => {
        if (payload !== undefined) this.#openPayload(k, payload)
      },
    })
    this.#imaLog = opts.imaLog
    this.#revocationPem = opts.revocationCertPem
    const ima: MeasurementList = { fromEntry: (entry) => this.#imaFrom(entry) }
    this.#apiOptions = {
      uuid: this.uuid,
      tpm: this.#agentTpm,
      keys: this.#keys,
      apiVersions: this.#apiVersions,
      ima,
      measuredBootLog: () => this.#mbLog,
      bootTime: opts.bootTime ?? Math.floor(Date.now() / 1000),
      revocationCertPem: opts.revocationCertPem,
      hooks: {
        onQuote: (kind) => {
          if (kind === 'identity') {
            this.stats.identityQuotes++
          } else {
            this.stats.integrityQuotes++
            this.stats.lastQuoteAt = performance.now()
          }
        },
        onRevocation: (n: RevocationNotice) => {
          this.revocations.push({ msg: n.msg, verified: n.verified })
        },
      },
    }
    this.#api = new AgentApi(this.#apiOptions)
  }

  /** The `boottime` this agent reports (seconds since the epoch). */
  get bootTime(): number {
    return this.#apiOptions.bootTime ?? 0
  }

  /**
   * Serves `list` (an ASCII IMA list, e.g. a real guest's `ascii_runtime_measurements`) in place
   * of the synthetic one, and sets PCR 10 of every bank to its replay. Call again with a longer
   * list to model a growing log.
   *
   * @throws {ImaError} when a line of `list` does not parse.
   */
  serveImaList(list: string): void {
    const lines = list
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => `${l}\n`)
    const offsets: number[] = []
    let off = 0
    for (const l of lines) {
      offsets.push(off)
      off += l.length
    }
    const replay = replayImaList(list, this.tpm.banks)
    for (const [bank, v] of replay.pcr10) this.tpm.restorePcr(bank, IMA_PCR, v)
    this.#imaText = { lines, offsets, text: lines.join('') }
  }

  /**
   * Serves `log` (a UEFI `binary_bios_measurements`) as `mb_measurement_list` (sent when PCR 0 is
   * quoted) and sets PCRs 0–23 of every bank the log carries to their replayed values (PCRs 10
   * and 16 are left alone). `replayPcrs: false` serves the bytes without touching PCRs (for
   * malformed logs).
   *
   * @throws {MbError} when `replayPcrs` is true and the log does not parse.
   */
  serveMbLog(log: Uint8Array, replayPcrs = true): void {
    this.#mbLog = new Uint8Array(log)
    if (!replayPcrs) return
    const replay = replayEventLog(parseEventLog(log))
    const banks = new Set(this.tpm.banks)
    for (const [bank, values] of replay.pcrs) {
      if (!banks.has(bank)) continue
      for (const [n, v] of values) {
        if (n !== IMA_PCR && n !== NK_BINDING_PCR) this.tpm.restorePcr(bank, n, v)
      }
    }
  }

  /**
   * A reboot: every PCR is reset, `boottime` becomes `bootTime` (default: one more than before),
   * and the logs restart — `imaList` / `mbLog` when given, else the ones served before (from
   * entry 0, with their PCRs replayed again). K and pending U/V are kept.
   */
  reboot(opts: { bootTime?: number; imaList?: string; mbLog?: Uint8Array } = {}): void {
    for (let i = 0; i < 24; i++) this.tpm.resetPcr(i)
    const ima = opts.imaList ?? this.#imaText?.text
    if (ima !== undefined) this.serveImaList(ima)
    else if (this.#imaLog !== undefined) {
      for (const bank of this.tpm.banks) {
        const v = this.#imaLog.pcr10(bank)
        if (v !== undefined) this.tpm.restorePcr(bank, IMA_PCR, v)
      }
    }
    const mb = opts.mbLog ?? this.#mbLog
    if (mb !== undefined) this.serveMbLog(mb)
    this.#apiOptions.bootTime = opts.bootTime ?? this.bootTime + 1
    this.#api = new AgentApi({ ...this.#apiOptions, revocationCertPem: this.#revocationPem })
  }

  /** The served IMA list from `entry` on (rust-keylime's restart-at-0 rule), recorded. */
  #imaFrom(entry: number): { text: string; entry: number } | undefined {
    const t = this.#imaText
    let ml: { text: string; entry: number } | undefined
    if (t === undefined) ml = this.#imaLog?.fromEntry(entry)
    else if (!Number.isSafeInteger(entry) || entry < 0 || entry > t.lines.length)
      ml = { text: t.text, entry: 0 }
    else if (entry === t.lines.length) ml = { text: '', entry }
    else ml = { text: t.text.slice(t.offsets[entry]), entry }
    if (ml !== undefined) {
      if (this.imaRequests.length >= IMA_REQUEST_HISTORY) this.imaRequests.shift()
      const lines = ml.text === '' ? 0 : ml.text.split('\n').length - 1
      this.imaRequests.push({ requested: entry, entry: ml.entry, lines })
    }
    return ml
  }

  /** True once U and V have combined into a K that matched the tenant's auth_tag. */
  get hasKey(): boolean {
    return this.#keys.hasKey
  }

  /** Loads the certificate whose key signs revocation notices (`RevocationNotifier-cert.crt`). */
  setRevocationCert(pem: string): void {
    this.#revocationPem = pem
    this.#api.setRevocationCert(pem)
  }

  /** The POST body of registration (wire-formats §2.2). */
  registrationBody(): Record<string, unknown> {
    return {
      aik_tpm: Buffer.from(this.tpm.akTpm2b).toString('base64'),
      ek_tpm: Buffer.from(this.tpm.ekTpm2b).toString('base64'),
      ekcert: this.tpm.ekCertPem ?? '',
      iak_cert: null,
      idevid_cert: null,
      ip: this.contactIp,
      mtls_cert: this.mtlsCertPem,
      port: this.contactPort,
    }
  }

  /**
   * Registers and activates with the registrar at `registrarUrl` through src/agent's
   * {@link registerAgent} (software ActivateCredential).
   *
   * @throws {AgentError} `ERR_AGENT_REGISTRATION` on any refusal (status in the message).
   * @throws {TpmError} if the blob does not activate with this TPM.
   */
  async register(registrarUrl: string): Promise<RegistrationResult> {
    const r = await registerAgent({
      registrarUrl,
      uuid: this.uuid,
      tpm: this.#agentTpm,
      contactIp: this.contactIp,
      contactPort: this.contactPort,
      mtlsCertPem: this.mtlsCertPem,
      apiVersions: this.#apiVersions,
    })
    this.registrarApiVersion = r.apiVersion
    return r
  }

  /** Answers one request of the agent API, with the configured faults. */
  async handle(req: Request, url: URL = new URL(req.url)): Promise<Response> {
    if (this.faults.dead) return resetConnection()
    if (this.faults.slowMs !== undefined && this.faults.slowMs > 0) await sleep(this.faults.slowMs)
    const res = await this.#api.handle(req, url)
    if (res.status >= 400) this.stats.errors++
    const padding = this.faults.answerPadding ?? 0
    if (padding <= 0 || !url.pathname.endsWith('/quotes/integrity')) return res
    const body = (await res.json()) as { results?: Record<string, unknown> }
    body.results = { ...body.results, padding: 'x'.repeat(padding) }
    this.stats.faultsInjected++
    return Response.json(body, { status: res.status })
  }

  /** Runs a quote with PCR16 binding and the configured faults. */
  #quote(nonce: string, pcrs: readonly number[]): string {
    let quotedNonce = nonce
    if (hit(this.faults.wrongNonce)) {
      quotedNonce = nonce.length > 1 ? nonce.slice(1) + nonce[0] : `${nonce}x`
      if (quotedNonce === nonce) quotedNonce = `${nonce}x`
      this.stats.faultsInjected++
    }
    if (hit(this.faults.pcrChange)) {
      this.tpm.extendData(FAULT_PCR, randomBytes(32))
      this.stats.faultsInjected++
    }
    this.tpm.bindNk(this.faults.nkPem)
    const selected = [...pcrs]
    if (!selected.includes(NK_BINDING_PCR)) selected.push(NK_BINDING_PCR)
    const q = this.tpm.quote(quotedNonce, selected)
    if (!hit(this.faults.badSignature)) return q.quote
    this.stats.faultsInjected++
    const sig = new Uint8Array(q.signature)
    sig[sig.byteLength - 1]! ^= 0x01
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
    return `r${b64(q.attest)}:${b64(sig)}:${b64(q.pcrBlob)}`
  }

  /** Decrypts the payload; loads a revocation certificate from a zip. */
  #openPayload(k: Uint8Array, b64: string): void {
    try {
      this.payload = decryptPayload(k, b64)
    } catch {
      this.payload = undefined
      return
    }
    if (this.payload[0] !== 0x50 || this.payload[1] !== 0x4b) return // not a zip ("PK")
    try {
      const files = unzipSync(this.payload)
      const cert = files['RevocationNotifier-cert.crt']
      if (cert !== undefined) this.setRevocationCert(Buffer.from(cert).toString('utf8'))
    } catch {
      // a payload that is not a valid zip is kept as is, like extract_payload_zip failures
    }
  }
}
