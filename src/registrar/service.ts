/**
 * The registrar service: registration, activation and the admin reads, over the shared database
 * (upstream `RegistrarAgent` + `AgentsController`, keylime-api.md §1.6, wire-formats §2).
 *
 * Registration, in order:
 * 1. the agent id (`[\w.-]+`, ≤ 80) and every field are decoded (`decodeRegistration`);
 * 2. stateless checks: AK attributes (restricted signing key in the TPM: kept although upstream
 *    dropped it), EK a restricted decryption key, EK certificate ↔ `ek_tpm`, IAK/IDevID
 *    certificates ↔ keys, their trust and the IAK's TPM2_Certify of the AK; the EK certificate is
 *    checked against `tpm_cert_store` and the verdict kept;
 * 3. the challenge (32 random alphanumerics) is wrapped with MakeCredential(EK, Name(AK));
 * 4. serialized per agent id: an in-process mutex, and in the database a compare-and-set write
 *    (insert only if no row exists, update only if `regcount` is still the one read), so several
 *    processes on one PostgreSQL cannot interleave either; a lost race re-reads and re-checks.
 *    Re-registration with a different `ek_tpm`, `ekcert` or `aik_tpm` → 403 (upstream #1820 fix);
 *    then the `tpm_identity` rules; the row is written with `key = base64(challenge)`,
 *    `active = false` and `regcount + 1` — unless the agent is activated: then the new row is
 *    only staged (`pending_key`, `pending_values`) and replaces the record when the agent answers
 *    the new challenge, so an unauthenticated request can neither change nor deactivate an
 *    activated record (issue 17, finding 2; upstream deactivates it at once).
 * Every write is one atomic statement decided after all checks: nothing is half-written. A new
 * agent costs one statement to register and (key cached in this process) one to activate, and
 * these compare-and-set writes are group-committed (`registrar-writes.ts`): the writes of
 * concurrent requests go out as one multi-row statement per kind, each caller learning its own
 * row's outcome.
 *
 * Activation compares `auth_tag` with hex HMAC-SHA384(key = base64 text, msg = agent id) in
 * constant time, against the staged challenge first, then the record's own. The write is
 * conditional on the key the tag was checked against. A mismatch answers 400 and changes nothing
 * (upstream deletes the registration, which let any client of the plain port take an identity
 * over in two requests: finding 2); failures are counted per agent and logged at the 1st, 10th,
 * 100th … in a row.
 *
 * @module
 */
import { asc, eq } from 'drizzle-orm'
import { type Db, type KeylimeDatabase, registrarmain } from '../db/index.ts'
import { isKeylimeError, KeylimeError } from '../errors.ts'
import type { Logger } from '../log/logger.ts'
import type { CertStore } from '../tpm/cert-store.ts'
import { verifyEkCertChain } from '../tpm/cert-store.ts'
import { serializeCredentialBlob } from '../tpm/credential-blob.ts'
import { checkEkCertKey, type EkCertificate, type MalformedCertAction } from '../tpm/ek-cert.ts'
import { verifyHmacProof } from '../tpm/hmac-proof.ts'
import { makeCredential } from '../tpm/make-credential.ts'
import { computeName, parseTpm2bPublic, toKeyObject, type TpmPublic } from '../tpm/public-area.ts'
import { assessEkCert, type EkCertAssessment } from './assess-ek-cert.ts'
import { checkAkAttributes } from './check-ak-attributes.ts'
import { checkEkPublic } from './check-ek-public.ts'
import { type DecodedRegistration, decodeRegistration } from './decode-registration.ts'
import { FailedActivations } from './failed-activations.ts'
import { invalidData, isRegistrarError, RegistrarError } from './errors.ts'
import { generateChallenge } from './generate-challenge.ts'
import { KeyedMutex } from './keyed-mutex.ts'
import { RecentKeys } from './recent-keys.ts'
import {
  type RegistrarValues,
  RegistrarWrites,
  type RegistrarWritesStats,
} from './registrar-writes.ts'
import { type RegistrarRow, type RenderedAgent, renderAgent } from './render-agent.ts'
import { validateAgentId } from './validate-agent-id.ts'
import type { WriteBatcherOptions } from './write-batcher.ts'
import { verifyIakCertify } from './verify-iak-certify.ts'

/** `[registrar] tpm_identity`: which root identity a registration must carry. */
export type TpmIdentityMode = 'default' | 'ek_cert' | 'iak_idevid' | 'ek_cert_or_iak_idevid'

/** Where the trust store comes from (a {@link CertStoreCache} in production). */
export interface CertStoreSource {
  /** The store, or the error loading it raised. */
  get(): CertStore | Error
}

/** Options of {@link RegistrarService}. */
export interface RegistrarServiceOptions {
  database: KeylimeDatabase
  log: Logger
  /** Trust anchors for EK, IAK and IDevID certificates (`[tenant] tpm_cert_store`). */
  certStore: CertStoreSource
  /** Default `default`. */
  tpmIdentity?: TpmIdentityMode
  /** Default `warn`. */
  malformedCertAction?: MalformedCertAction
  /** Clock for certificate validity (STYLE rule 9). */
  now?: () => Date
  /** Group commit bounds (`registrar-writes.ts`): rows per statement, statements under way. */
  batching?: WriteBatcherOptions
}

/** The answer to a registration: the base64 credential blob for TPM2_ActivateCredential. */
export interface RegisterResult {
  blob: string
}

/** A row ready to write, with the blob to answer and the EK verdict to log. */
interface PreparedRow {
  values: RegistrarValues & { key: string; regcount: number }
  blob: string
  verdict: EkCertAssessment
}

/** Conditional writes retried at most this often before answering 503 (lost races). */
const MAX_WRITE_ATTEMPTS = 5

const b64 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')
const unb64 = (s: string): Buffer => Buffer.from(s, 'base64')

function usableKey(pub: TpmPublic, field: string): void {
  try {
    toKeyObject(pub)
  } catch (e) {
    if (!isKeylimeError(e)) throw e
    throw invalidData(`${field} does not hold a usable public key (${e.message})`, undefined, e)
  }
}

function certMatchesKey(
  cert: EkCertificate,
  pub: TpmPublic,
  certField: string,
  keyField: string,
): void {
  try {
    checkEkCertKey(cert, pub)
  } catch (e) {
    if (!isKeylimeError(e)) throw e
    throw invalidData(
      `${keyField} must contain the same public key found in ${certField}`,
      'ERR_REGISTRAR_EK_CERT',
      e,
    )
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}

/** Registration, activation and admin operations of the registrar. */
export class RegistrarService {
  readonly #db: Db
  readonly #log: Logger
  readonly #certStore: CertStoreSource
  readonly #identity: TpmIdentityMode
  readonly #action: MalformedCertAction
  readonly #now: () => Date
  readonly #mutex = new KeyedMutex()
  readonly #keys = new RecentKeys()
  readonly #failures = new FailedActivations()
  readonly #writes: RegistrarWrites

  constructor(options: RegistrarServiceOptions) {
    this.#db = options.database.db
    this.#writes = new RegistrarWrites(this.#db, options.batching)
    this.#log = options.log
    this.#certStore = options.certStore
    this.#identity = options.tpmIdentity ?? 'default'
    this.#action = options.malformedCertAction ?? 'warn'
    this.#now = options.now ?? (() => new Date())
  }

  /** Statement counters of the group-committed writes (tests, metrics). */
  get writeStats(): RegistrarWritesStats {
    return this.#writes.stats
  }

  /**
   * Registers (or re-registers) an agent and returns the credential blob.
   *
   * @param apiVersion - the request's API version (selects the IAK qualifying data)
   * @throws RegistrarError 400 (invalid data, AK attributes, EK certificate, IAK), 403 (identity
   *   changed)
   */
  async register(
    agentIdInput: unknown,
    body: Record<string, unknown>,
    apiVersion: string,
  ): Promise<RegisterResult> {
    const agentId = validateAgentId(agentIdInput)
    const d = decodeRegistration(body, { malformedCertAction: this.#action })
    checkAkAttributes(d.aik.pub)
    usableKey(d.aik.pub, 'aik_tpm')
    if (d.ek !== undefined) {
      checkEkPublic(d.ek.pub)
      if (d.ekcert !== undefined) certMatchesKey(d.ekcert, d.ek.pub, 'ekcert', 'ek_tpm')
    }
    this.#checkIakIdevid(agentId, d, apiVersion)
    const now = this.#now()
    const assessment =
      d.ekcert === undefined ? undefined : assessEkCert(d.ekcert, this.#certStore.get(), now)
    // With the EK in the body (every real agent), the CPU work happens before taking the lock.
    const akName = computeName(d.aik.pub)
    const early = d.ek === undefined ? undefined : this.#challenge(d.ek.pub, akName)

    const result = await this.#mutex.run(agentId, async () => {
      // Optimistic concurrency: the write is conditional on what was read (no row yet, or the
      // same regcount), so registrations of one id from several processes serialize in the
      // database; a lost race re-reads and re-checks. A new agent costs one statement.
      for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
        const old =
          attempt === 0
            ? undefined
            : (
                await this.#db
                  .select()
                  .from(registrarmain)
                  .where(eq(registrarmain.agent_id, agentId))
              )[0]
        if (attempt > 0 && old !== undefined) this.#checkIdentityUnchanged(agentId, old, d)
        let prepared: PreparedRow
        try {
          prepared = this.#rowFor(agentId, d, old, assessment, early, akName, now)
        } catch (e) {
          // The blind first attempt knows no stored row; rules that depend on it are re-checked
          // against the row itself before answering.
          if (attempt === 0 && isRegistrarError(e)) continue
          throw e
        }
        const { values, blob, verdict } = prepared
        // An activated record stays as it is until the agent answers the new challenge.
        const staged = old?.active === true
        const written =
          old === undefined
            ? await this.#writes.insert(values)
            : staged
              ? await this.#writes.stage(values, old)
              : await this.#writes.update(values, old.regcount)
        if (!written) continue
        if (!staged) this.#keys.set(agentId, values.key)
        return { blob, regcount: values.regcount, verdict, staged }
      }
      throw new KeylimeError(
        'ERR_REGISTRAR_BUSY',
        `Agent with ID '${agentId}' is being registered concurrently; retry`,
        { status: 503 },
      )
    })
    const fields = {
      agent_id: agentId,
      regcount: result.regcount,
      ...(result.staged ? { pending_activation: true } : {}),
      ek_cert_verdict: result.verdict.verdict,
      tpm_manufacturer: result.verdict.tpm.manufacturer,
    }
    if (result.verdict.verdict === 'trusted' || result.verdict.verdict === 'absent') {
      this.#log.info('agent registered; activation challenge issued', fields)
    } else {
      this.#log.warn('agent registered with an EK certificate that is not trusted', {
        ...fields,
        ek_cert_detail: result.verdict.detail,
      })
    }
    return { blob: result.blob }
  }

  /**
   * Activates an agent with the proof of its TPM2_ActivateCredential: the HMAC of the challenge
   * of its latest registration (staged, for an activated agent, or the record's own).
   *
   * @throws RegistrarError 404 (unknown agent), 400 (missing or wrong `auth_tag`; nothing changes)
   */
  async activate(agentIdInput: unknown, body: Record<string, unknown>): Promise<void> {
    const agentId = validateAgentId(agentIdInput)
    const tag = body.auth_tag
    if (typeof tag !== 'string' || tag === '') {
      throw new RegistrarError(
        'ERR_REGISTRAR_INVALID_DATA',
        'auth_tag is required and must be a string',
      )
    }
    const outcome = await this.#mutex.run(agentId, () => this.#activateOnce(agentId, tag))
    if (outcome === 'missing') {
      throw new RegistrarError(
        'ERR_REGISTRAR_AGENT_NOT_FOUND',
        `Agent with ID '${agentId}' not found`,
      )
    }
    if (outcome === 'mismatch') {
      const { count, log } = this.#failures.record(agentId)
      if (log) {
        this.#log.warn('activation auth_tag mismatch; registration unchanged', {
          agent_id: agentId,
          failed_attempts: count,
        })
      }
      throw new RegistrarError(
        'ERR_REGISTRAR_AUTH_TAG',
        `Auth tag for agent '${agentId}' does not match the expected value; the registration is unchanged`,
      )
    }
    this.#failures.clear(agentId)
    if (outcome === 'unchanged') this.#log.debug('agent already active', { agent_id: agentId })
    else this.#log.info('agent activated', { agent_id: agentId })
  }

  /** One activation under the agent's lock: the outcome, every write conditional on its key. */
  async #activateOnce(
    agentId: string,
    tag: string,
  ): Promise<'activated' | 'unchanged' | 'missing' | 'mismatch'> {
    // The key of a registration made by this process is usually cached: then activation is one
    // statement. A stale cache costs a re-read, never a wrong write.
    const cached = this.#keys.take(agentId)
    if (
      cached !== undefined &&
      verifyHmacProof(cached, agentId, tag) &&
      (await this.#writes.activate(agentId, cached))
    ) {
      return 'activated'
    }
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      const [row] = await this.#db
        .select({
          key: registrarmain.key,
          active: registrarmain.active,
          pending_key: registrarmain.pending_key,
          pending_values: registrarmain.pending_values,
        })
        .from(registrarmain)
        .where(eq(registrarmain.agent_id, agentId))
      if (row === undefined) return 'missing'
      if (row.pending_key && verifyHmacProof(row.pending_key, agentId, tag)) {
        if (await this.#writes.applyStaged(agentId, row.pending_key, row.pending_values)) {
          return 'activated'
        }
      } else if (row.key && verifyHmacProof(row.key, agentId, tag)) {
        if (row.active) return 'unchanged'
        if (await this.#writes.activate(agentId, row.key)) return 'activated'
      } else {
        return 'mismatch'
      }
    }
    throw new KeylimeError(
      'ERR_REGISTRAR_BUSY',
      `Agent with ID '${agentId}' changed during activation; retry`,
      { status: 503 },
    )
  }

  /**
   * The registration of an activated agent.
   *
   * @throws RegistrarError 404 when unknown or not activated
   */
  async show(agentIdInput: unknown): Promise<RenderedAgent> {
    const agentId = validateAgentId(agentIdInput)
    const [row] = await this.#db
      .select()
      .from(registrarmain)
      .where(eq(registrarmain.agent_id, agentId))
    if (row === undefined) {
      throw new RegistrarError(
        'ERR_REGISTRAR_AGENT_NOT_FOUND',
        `Agent with ID '${agentId}' not found`,
      )
    }
    if (!row.active) {
      throw new RegistrarError(
        'ERR_REGISTRAR_AGENT_NOT_ACTIVE',
        `Agent with ID '${agentId}' has not been activated`,
      )
    }
    return renderAgent(row)
  }

  /** Every registered agent id (activated or not), sorted. */
  async list(): Promise<string[]> {
    const rows = await this.#db
      .select({ id: registrarmain.agent_id })
      .from(registrarmain)
      .orderBy(asc(registrarmain.agent_id))
    return rows.map((r) => r.id)
  }

  /**
   * Deletes a registration.
   *
   * @throws RegistrarError 404 when unknown
   */
  async remove(agentIdInput: unknown): Promise<void> {
    const agentId = validateAgentId(agentIdInput)
    const deleted = await this.#mutex.run(agentId, () =>
      this.#db
        .delete(registrarmain)
        .where(eq(registrarmain.agent_id, agentId))
        .returning({ id: registrarmain.agent_id }),
    )
    if (deleted.length === 0) {
      throw new RegistrarError(
        'ERR_REGISTRAR_AGENT_NOT_FOUND',
        `Agent with ID '${agentId}' not found`,
      )
    }
    this.#failures.clear(agentId)
    this.#log.info('agent registration deleted', { agent_id: agentId })
  }

  /** The row to write for this registration over `old` (undefined for a new agent). */
  #rowFor(
    agentId: string,
    d: DecodedRegistration,
    old: RegistrarRow | undefined,
    assessment: EkCertAssessment | undefined,
    early: { challenge: string; blob: string } | undefined,
    akName: Uint8Array,
    now: Date,
  ): PreparedRow {
    const ekBytes = d.ek?.bytes ?? (old?.ek_tpm ? unb64(old.ek_tpm) : undefined)
    let ekPub = d.ek?.pub
    if (ekPub === undefined && ekBytes !== undefined) {
      ekPub = parseTpm2bPublic(ekBytes)
      if (d.ekcert !== undefined) certMatchesKey(d.ekcert, ekPub, 'ekcert', 'ek_tpm')
    }
    if (d.ekcert !== undefined && ekPub === undefined) {
      throw invalidData('ek_tpm is required when an EK certificate is provided')
    }
    const verdict: EkCertAssessment =
      assessment ??
      (old?.ekcert
        ? {
            verdict: (old.ek_cert_verdict ?? 'absent') as EkCertAssessment['verdict'],
            detail: old.ek_cert_detail ?? '',
            tpm: {
              manufacturer: old.tpm_manufacturer ?? undefined,
              model: old.tpm_model ?? undefined,
              version: old.tpm_version ?? undefined,
            },
          }
        : assessEkCert(undefined, new Error('unused'), now))
    const hasIakIdevid =
      (d.iak !== undefined && d.idevid !== undefined) || Boolean(old?.iak_tpm && old?.idevid_tpm)
    this.#checkRootIdentity(ekPub !== undefined, verdict, hasIakIdevid)
    if (ekPub === undefined || ekBytes === undefined) {
      throw invalidData('ek_tpm is required to produce the activation challenge')
    }
    const { challenge, blob } = early ?? this.#challenge(ekPub, akName)
    const values = {
      agent_id: agentId,
      key: Buffer.from(challenge, 'latin1').toString('base64'),
      aik_tpm: b64(d.aik.bytes),
      ek_tpm: b64(ekBytes),
      ekcert: d.ekcert ? b64(d.ekcert.der) : (old?.ekcert ?? null),
      iak_tpm: d.iak ? b64(d.iak.bytes) : (old?.iak_tpm ?? null),
      idevid_tpm: d.idevid ? b64(d.idevid.bytes) : (old?.idevid_tpm ?? null),
      iak_cert: d.iakCert ? b64(d.iakCert.der) : (old?.iak_cert ?? null),
      idevid_cert: d.idevidCert ? b64(d.idevidCert.der) : (old?.idevid_cert ?? null),
      mtls_cert:
        d.mtlsCert === undefined
          ? (old?.mtls_cert ?? null)
          : d.mtlsCert.kind === 'disabled'
            ? 'disabled'
            : b64(d.mtlsCert.cert.der),
      ip: d.ip ?? old?.ip ?? null,
      port: d.port ?? old?.port ?? null,
      active: false,
      pending_key: null,
      pending_values: null,
      virtual: old?.virtual ?? false,
      provider_keys: old?.provider_keys ?? {},
      regcount: (old?.regcount ?? 0) + 1,
      ek_cert_verdict: verdict.verdict,
      ek_cert_detail: verdict.detail.slice(0, 1000),
      ek_cert_checked_at: assessment
        ? Math.floor(now.getTime() / 1000)
        : (old?.ek_cert_checked_at ?? null),
      tpm_manufacturer: verdict.tpm.manufacturer ?? null,
      tpm_model: verdict.tpm.model ?? null,
      tpm_version: verdict.tpm.version ?? null,
    }
    return { values, blob, verdict }
  }

  /** A fresh challenge and its MakeCredential blob (base64). */
  #challenge(ek: TpmPublic, akName: Uint8Array): { challenge: string; blob: string } {
    const challenge = generateChallenge()
    try {
      const cred = makeCredential(ek, akName, Buffer.from(challenge, 'latin1'))
      return { challenge, blob: b64(serializeCredentialBlob(cred)) }
    } catch (e) {
      if (!isKeylimeError(e)) throw e
      throw invalidData(
        `ek_tpm cannot be used for TPM2_MakeCredential (${e.message})`,
        undefined,
        e,
      )
    }
  }

  /** Upstream `_check_tpm_identity_immutable`: ek_tpm, ekcert and aik_tpm may not change. */
  #checkIdentityUnchanged(agentId: string, old: RegistrarRow, d: DecodedRegistration): void {
    const changed: string[] = []
    if (old.ek_tpm && d.ek && !sameBytes(d.ek.bytes, unb64(old.ek_tpm))) changed.push('ek_tpm')
    if (old.ekcert && d.ekcert && !sameBytes(d.ekcert.der, unb64(old.ekcert)))
      changed.push('ekcert')
    if (old.aik_tpm && !sameBytes(d.aik.bytes, unb64(old.aik_tpm))) changed.push('aik_tpm')
    if (changed.length === 0) return
    this.#log.warn('rejected re-registration with a different TPM identity', {
      agent_id: agentId,
      changed: changed.join(','),
    })
    throw new RegistrarError(
      'ERR_REGISTRAR_IDENTITY_CHANGED',
      `Agent re-registration with different TPM identity is forbidden for security reasons (changed: ${changed.join(', ')}); delete the agent first to register it with a new TPM`,
    )
  }

  /** IAK/IDevID: all four fields together, keys match certificates, trusted, AK certified. */
  #checkIakIdevid(agentId: string, d: DecodedRegistration, apiVersion: string): void {
    const given = [d.iak, d.idevid, d.iakCert, d.idevidCert].filter((v) => v !== undefined).length
    if (given === 0) return
    if (
      d.iak === undefined ||
      d.idevid === undefined ||
      d.iakCert === undefined ||
      d.idevidCert === undefined
    ) {
      throw invalidData(
        'iak_tpm, idevid_tpm, iak_cert and idevid_cert must be provided together',
        'ERR_REGISTRAR_IAK',
      )
    }
    usableKey(d.iak.pub, 'iak_tpm')
    usableKey(d.idevid.pub, 'idevid_tpm')
    certMatchesKey(d.iakCert, d.iak.pub, 'iak_cert', 'iak_tpm')
    certMatchesKey(d.idevidCert, d.idevid.pub, 'idevid_cert', 'idevid_tpm')
    const store = this.#certStore.get()
    for (const [field, cert] of [
      ['iak_cert', d.iakCert],
      ['idevid_cert', d.idevidCert],
    ] as const) {
      try {
        if (store instanceof Error) throw store
        verifyEkCertChain(cert, store, { now: this.#now(), intermediates: cert.chain })
      } catch (e) {
        if (!isKeylimeError(e) && !(e instanceof Error)) throw e
        throw invalidData(
          `${field} must contain a certificate issued by a CA present in the trust store (${(e as Error).message})`,
          'ERR_REGISTRAR_IAK',
          e,
        )
      }
    }
    if (d.iakAttest === undefined || d.iakSign === undefined) {
      throw invalidData(
        "aik_tpm cannot be bound to the IAK because of a missing 'iak_attest' or 'iak_sign'",
        'ERR_REGISTRAR_IAK',
      )
    }
    verifyIakCertify({
      agentId,
      apiVersion,
      ak: d.aik.pub,
      iak: d.iak.pub,
      attest: d.iakAttest,
      signature: d.iakSign,
    })
  }

  /** `[registrar] tpm_identity` (upstream `_check_root_identity_presence`, plus EK trust). */
  #checkRootIdentity(hasEk: boolean, ek: EkCertAssessment, hasIakIdevid: boolean): void {
    const trustedEk = hasEk && ek.verdict === 'trusted'
    switch (this.#identity) {
      case 'iak_idevid':
        if (!hasIakIdevid)
          throw invalidData(
            'iak_tpm and idevid_tpm are required by configuration (tpm_identity = iak_idevid)',
          )
        return
      case 'ek_cert':
        if (!trustedEk) {
          throw invalidData(
            `a trusted EK certificate is required by configuration (tpm_identity = ek_cert); EK certificate verdict: ${ek.verdict}${ek.detail ? ` (${ek.detail})` : ''}`,
            'ERR_REGISTRAR_EK_CERT',
          )
        }
        return
      case 'ek_cert_or_iak_idevid':
        if (!trustedEk && !hasIakIdevid) {
          throw invalidData(
            `a trusted EK certificate or an IAK and IDevID are required by configuration (tpm_identity = ek_cert_or_iak_idevid); EK certificate verdict: ${ek.verdict}`,
            'ERR_REGISTRAR_EK_CERT',
          )
        }
        return
      default:
        if (!hasEk && !hasIakIdevid)
          throw invalidData('ek_tpm is required in absence of an IAK and IDevID')
    }
  }
}
