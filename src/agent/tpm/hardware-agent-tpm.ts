/**
 * {@link AgentTpm} on a real TPM (or swtpm) through {@link TpmAccess}, following rust-keylime's
 * start-up (wire-formats §6.5 "Agent boot order"):
 *
 * 1. EK: a persistent EK made from the default template if the TPM has one (0x8101xxxx, or the
 *    configured `ek_handle`), else CreatePrimary with the L-1 / L-2 template.
 * 2. EK certificate from NV (RSA 0x01c00002, ECC P-256 0x01c0000a) plus the chain at
 *    0x01c00100–0x01c001ff, as PEM.
 * 3. AK: Load the blobs saved in `agent_data.json` (0600) if their algorithms and EK match, else
 *    Create under the EK (PolicySecret(endorsement) session) and save them.
 * 4. The AK (and a transient EK) are kept as saved contexts (TPM2_ContextSave) and flushed:
 *    each operation loads what it needs and flushes it again, so between operations nothing of
 *    the agent's is loaded in the TPM (swtpm has only 3 transient slots) and the connection can
 *    be closed (see tpm-access.ts). A context that no longer loads (the TPM was reset, swtpm
 *    restarted) is made again from the AK blobs.
 *
 * Quotes re-bind PCR16 to the NK each time and re-read PCRs until their digest matches the one
 * in the attest (a PCR such as 10 may move between Quote and PCR_Read).
 *
 * @module
 */

import { createHash, timingSafeEqual } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { parseTpmsAttest } from '../../tpm/attest.ts'
import {
  type EncAlg,
  HASH_ALG_ID,
  type HashAlg,
  hashAlgName,
  type SignAlg,
  TPM_RH,
  TPM_ST,
} from '../../tpm/constants.ts'
import { parseCredentialBlob } from '../../tpm/credential-blob.ts'
import { serializePcrBlob } from '../../tpm/pcr-blob.ts'
import type { PcrSelection } from '../../tpm/pcr-selection.ts'
import { parseTpm2bPublic } from '../../tpm/public-area.ts'
import { serializeQuoteString } from '../../tpm/quote-string.ts'
import type { AgentTpm } from '../agent-tpm.ts'
import { AgentError, isAgentError } from '../errors.ts'
import type { PayloadKey } from '../load-or-create-nk.ts'
import { EK_NV, HANDLE_RANGE } from './command-codes.ts'
import { akTemplate, ekTemplate, isDefaultEk } from './ek-templates.ts'
import type { TpmAccess } from './tpm-access.ts'
import type { CreatedKey, TpmClient, TpmQuote } from './tpm-client.ts'

/** NK binding PCR (wire-formats §1.5). */
const NK_PCR = 16
/** Attempts to get a quote whose PCR digest matches a PCR_Read. */
const QUOTE_ATTEMPTS = 5

/** Options of {@link openHardwareAgentTpm}. */
export interface HardwareAgentTpmOptions {
  /** The TPM, one operation at a time. */
  access: TpmAccess
  /** `tpm_hash_alg`. */
  hashAlg: HashAlg
  /** `tpm_encryption_alg`. */
  encAlg: EncAlg
  /** `tpm_signing_alg`. */
  signAlg: SignAlg
  /** `ek_handle`: a persistent EK handle, or undefined to look for one / create one. */
  ekHandle?: number
  /** Where the AK blobs live (`agent_data_path`). */
  agentDataPath: string
  /** The NK. */
  nk: PayloadKey
  /** Endorsement hierarchy password (`tpm_ownerpassword`; default empty). */
  endorsementAuth?: Uint8Array
  /** Send TPM2_Startup first (simulators; default false). */
  startup?: boolean
  /** Log callback (no secrets are passed). */
  log?: (msg: string, fields?: Record<string, unknown>) => void
}

/** rust-keylime's `agent_data.json` shape (byte arrays as number lists). */
interface AgentData {
  ak_hash_alg: string
  ak_sign_alg: string
  ak_enc_alg?: string
  ak_public: number[]
  ak_private: number[]
  ek_hash: string
}

/** DER length of the certificate at the start of `der` (trailing NV padding is dropped). */
function derLength(der: Uint8Array, at = 0): number | undefined {
  if (der[at] !== 0x30) return undefined
  const first = der[at + 1]
  if (first === undefined) return undefined
  if (first < 0x80) return 2 + first
  const n = first & 0x7f
  if (n < 1 || n > 4) return undefined
  let len = 0
  for (let i = 0; i < n; i++) len = len * 256 + (der[at + 2 + i] ?? 0)
  return 2 + n + len
}

/** Splits concatenated DER certificates (NV chain indices may hold several). */
function splitDer(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let at = 0; at < bytes.byteLength;) {
    const len = derLength(bytes, at)
    if (len === undefined || at + len > bytes.byteLength) break
    out.push(bytes.subarray(at, at + len))
    at += len
  }
  return out
}

function toPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64')
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`
}

/** The EK as the agent holds it between operations. */
type EkRef = { persistent: true; handle: number } | { persistent: false; context: Uint8Array }

/** The agent's TPM identity on a real TPM. */
export class HardwareAgentTpm implements AgentTpm {
  readonly hashAlg: HashAlg
  readonly encAlg: EncAlg
  readonly signAlg: SignAlg
  readonly ekTpm2b: Uint8Array
  readonly akTpm2b: Uint8Array
  readonly ekCertPem: string | undefined
  readonly nkPem: string
  /** The AK's handle at start-up (each operation loads the AK again, under a new handle). */
  readonly akHandle: number
  /** Whether the AK was loaded from `agent_data.json` (false: newly created). */
  readonly akReused: boolean
  /** The TPM banks PCR16 is bound in. */
  readonly banks: readonly HashAlg[]
  /** The allocated PCRs of each bank (push mode's `available_subjects`). */
  readonly pcrAllocation: ReadonlyMap<HashAlg, readonly number[]>
  readonly #access: TpmAccess
  readonly #nk: PayloadKey
  readonly #endorsementAuth: Uint8Array | undefined
  readonly #akBlobs: CreatedKey
  #akContext: Uint8Array
  #ek: EkRef

  constructor(init: {
    opts: HardwareAgentTpmOptions
    ek: EkRef & { tpm2b: Uint8Array }
    ekCertPem: string | undefined
    ak: { handle: number; blobs: CreatedKey; context: Uint8Array; reused: boolean }
    banks: HashAlg[]
    pcrAllocation: Map<HashAlg, number[]>
  }) {
    this.#access = init.opts.access
    this.hashAlg = init.opts.hashAlg
    this.encAlg = init.opts.encAlg
    this.signAlg = init.opts.signAlg
    this.#nk = init.opts.nk
    this.nkPem = init.opts.nk.publicPem
    this.#endorsementAuth = init.opts.endorsementAuth
    this.ekTpm2b = init.ek.tpm2b
    this.#ek = init.ek
    this.ekCertPem = init.ekCertPem
    this.akTpm2b = init.ak.blobs.publicArea
    this.#akBlobs = init.ak.blobs
    this.#akContext = init.ak.context
    this.akHandle = init.ak.handle
    this.akReused = init.ak.reused
    this.banks = init.banks
    this.pcrAllocation = init.pcrAllocation
  }

  /**
   * Loads the EK for one operation: its persistent handle, else its saved context, else (the
   * context no longer loads) CreatePrimary again. `flush` says whether the caller must flush it.
   */
  async #loadEk(c: TpmClient): Promise<{ handle: number; flush: boolean }> {
    const ek = this.#ek
    if (ek.persistent) return { handle: ek.handle, flush: false }
    try {
      return { handle: await c.contextLoad(ek.context), flush: true }
    } catch (err) {
      if (!isAgentError(err, 'ERR_AGENT_TPM_RC')) throw err
    }
    const created = await c.createPrimary(
      TPM_RH.ENDORSEMENT,
      ekTemplate(this.encAlg),
      this.#endorsementAuth,
    )
    try {
      this.#ek = { persistent: false, context: await c.contextSave(created.handle) }
    } catch (err) {
      await c.flushContext(created.handle).catch(() => undefined)
      throw err
    }
    return { handle: created.handle, flush: true }
  }

  /** Loads the AK (saved context, else its blobs under the EK), runs `fn`, flushes the AK. */
  async #withAk<T>(c: TpmClient, fn: (ak: number) => Promise<T>): Promise<T> {
    let ak: number
    try {
      ak = await c.contextLoad(this.#akContext)
    } catch (err) {
      if (!isAgentError(err, 'ERR_AGENT_TPM_RC')) throw err
      ak = await this.#reloadAk(c)
    }
    try {
      return await fn(ak)
    } finally {
      await c.flushContext(ak).catch(() => undefined)
    }
  }

  /** TPM2_Load of the AK blobs (after a TPM reset); saves the new context. */
  async #reloadAk(c: TpmClient): Promise<number> {
    const ek = await this.#loadEk(c)
    try {
      const session = await c.endorsementSession(this.#endorsementAuth)
      const loaded = await c.load(ek.handle, { kind: 'policy', session }, this.#akBlobs)
      try {
        this.#akContext = await c.contextSave(loaded.handle)
      } catch (err) {
        await c.flushContext(loaded.handle).catch(() => undefined)
        throw err
      }
      return loaded.handle
    } finally {
      if (ek.flush) await c.flushContext(ek.handle).catch(() => undefined)
    }
  }

  activateCredential(blob: Uint8Array): Promise<Uint8Array> {
    const { credentialBlob, encryptedSecret } = parseCredentialBlob(blob)
    return this.#access.use(async (c) => {
      const ek = await this.#loadEk(c)
      try {
        return await this.#withAk(c, async (ak) => {
          const session = await c.endorsementSession(this.#endorsementAuth)
          try {
            return await c.activateCredential(
              ak,
              ek.handle,
              { kind: 'policy', session },
              credentialBlob,
              encryptedSecret,
            )
          } catch (err) {
            // a failed command leaves its session loaded
            await c.flushContext(session).catch(() => undefined)
            throw err
          }
        })
      } finally {
        if (ek.flush) await c.flushContext(ek.handle).catch(() => undefined)
      }
    })
  }

  decryptWithNk(ciphertext: Uint8Array): Uint8Array {
    return this.#nk.decrypt(ciphertext)
  }

  /** PCR_Reset(16) and PCR_Extend(16) with H_bank(NK PEM) in every bank we can hash. */
  async #bindNk(c: TpmClient): Promise<void> {
    await c.pcrReset(NK_PCR)
    const pem = Buffer.from(this.nkPem, 'utf8')
    await c.pcrExtend(
      NK_PCR,
      this.banks.map((b) => ({
        hashAlg: HASH_ALG_ID[b],
        digest: createHash(b).update(pem).digest(),
      })),
    )
  }

  quote(nonce: string, pcrs: readonly number[]): Promise<string> {
    const nonceBytes = Buffer.from(nonce, 'utf8')
    if (nonceBytes.byteLength > 64) {
      return Promise.reject(new AgentError('ERR_AGENT_REQUEST', 'nonce too long'))
    }
    const indices = [...new Set([...pcrs, NK_PCR])].sort((a, b) => a - b)
    return this.#access.use((c) =>
      this.#withAk(c, async (ak) => {
        await this.#bindNk(c)
        const q = await quoteStable(c, ak, nonceBytes, this.hashAlg, indices)
        return serializeQuoteString({
          attest: q.attest,
          signature: q.signature,
          pcrBlob: q.subjectData,
        })
      }),
    )
  }

  /**
   * Push mode (API 3.0): TPM2_Quote over `pcrs` of `bank` with the raw challenge bytes as
   * qualifying data; no NK binding (push attestation carries no payload keys).
   */
  quotePcrs(
    qualifyingData: Uint8Array,
    bank: HashAlg,
    pcrs: readonly number[],
  ): Promise<PushQuote> {
    if (qualifyingData.byteLength > 64) {
      return Promise.reject(new AgentError('ERR_AGENT_REQUEST', 'challenge too long'))
    }
    const indices = [...new Set(pcrs)].sort((a, b) => a - b)
    return this.#access.use((c) =>
      this.#withAk(c, (ak) => quoteStable(c, ak, qualifyingData, bank, indices)),
    )
  }

  /**
   * Push-mode proof of possession: TPM2_Certify of the AK by the AK with the challenge as
   * qualifying data. Returns the TPMS_ATTEST and the TPMT_SIGNATURE.
   */
  certifyAk(qualifyingData: Uint8Array): Promise<TpmQuote> {
    if (qualifyingData.byteLength > 64) {
      return Promise.reject(new AgentError('ERR_AGENT_REQUEST', 'challenge too long'))
    }
    return this.#access.use((c) => this.#withAk(c, (ak) => c.certify(ak, ak, qualifyingData)))
  }

  /** Closes the TPM access (nothing of the agent's is loaded between operations). */
  close(): Promise<void> {
    return this.#access.close()
  }
}

/** A push-mode quote: TPMS_ATTEST, TPMT_SIGNATURE and the tpm2-tools PCR blob. */
export interface PushQuote {
  /** TPMS_ATTEST bytes. */
  attest: Uint8Array
  /** TPMT_SIGNATURE bytes. */
  signature: Uint8Array
  /** The serialized PCR blob of the quoted PCRs (`subject_data`, the quote string's 3rd part). */
  subjectData: Uint8Array
}

/**
 * TPM2_Quote, re-read until the PCR values match the quoted digest (a PCR such as 10 may move
 * between Quote and PCR_Read), so the blob always describes what was signed.
 */
async function quoteStable(
  c: TpmClient,
  ak: number,
  qualifyingData: Uint8Array,
  bank: HashAlg,
  indices: readonly number[],
): Promise<PushQuote> {
  const selection: PcrSelection[] = [{ hashAlg: HASH_ALG_ID[bank], pcrs: [...indices] }]
  for (let attempt = 1; ; attempt++) {
    const q = await c.quote(ak, qualifyingData, selection)
    const values = (await c.pcrRead(HASH_ALG_ID[bank], indices)).flat()
    const attest = parseTpmsAttest(q.attest, { expectType: TPM_ST.ATTEST_QUOTE })
    if (attest.type === TPM_ST.ATTEST_QUOTE) {
      const h = createHash(bank)
      for (const v of values) h.update(v)
      const digest = h.digest()
      const quoted = attest.quote.pcrDigest
      if (quoted.byteLength === digest.byteLength && timingSafeEqual(quoted, digest)) {
        return {
          attest: q.attest,
          signature: q.signature,
          subjectData: serializePcrBlob(selection, values),
        }
      }
    }
    if (attempt >= QUOTE_ATTEMPTS) {
      throw new AgentError('ERR_AGENT_TPM_RESPONSE', 'PCRs kept changing during the quote')
    }
  }
}

/** Finds a persistent default-template EK (handles 0x81010000…0x8101ffff). */
async function findPersistentEk(
  client: TpmClient,
  alg: EncAlg,
): Promise<{ handle: number; tpm2b: Uint8Array } | undefined> {
  const handles = await client.getHandles(HANDLE_RANGE.persistent)
  for (const h of handles.filter((x) => x >= 0x81010000 && x <= 0x8101ffff)) {
    const obj = await client.readPublic(h)
    if (isDefaultEk(parseTpm2bPublic(obj.publicArea), alg)) {
      return { handle: h, tpm2b: obj.publicArea }
    }
  }
  return undefined
}

/** Reads the EK certificate and NV chain as PEM; undefined if the TPM has no EK certificate. */
async function readEkCertPem(client: TpmClient, alg: EncAlg): Promise<string | undefined> {
  const der = await client.nvReadAll(alg === 'rsa' ? EK_NV.rsa2048Cert : EK_NV.eccP256Cert)
  if (der === undefined) return undefined
  const certs = splitDer(der)
  if (certs.length === 0) return undefined
  const chain = (await client.getHandles(EK_NV.chainFirst)).filter((h) => h <= EK_NV.chainLast)
  for (const idx of chain) {
    const bytes = await client.nvReadAll(idx)
    if (bytes !== undefined) certs.push(...splitDer(bytes))
  }
  return certs.map(toPem).join('')
}

function readAgentData(path: string): AgentData | undefined {
  if (!existsSync(path)) return undefined
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as AgentData
    if (!Array.isArray(v.ak_public) || !Array.isArray(v.ak_private)) return undefined
    return v
  } catch {
    return undefined
  }
}

/** Step 1: the persistent EK, else a transient one (its handle goes to `loaded`). */
async function bringUpEk(
  client: TpmClient,
  opts: HardwareAgentTpmOptions,
  loaded: number[],
): Promise<{ handle: number; tpm2b: Uint8Array; persistent: boolean }> {
  if (opts.ekHandle !== undefined) {
    const obj = await client.readPublic(opts.ekHandle)
    return { handle: opts.ekHandle, tpm2b: obj.publicArea, persistent: true }
  }
  const found = await findPersistentEk(client, opts.encAlg)
  if (found !== undefined) return { ...found, persistent: true }
  const created = await client.createPrimary(
    TPM_RH.ENDORSEMENT,
    ekTemplate(opts.encAlg),
    opts.endorsementAuth,
  )
  loaded.push(created.handle)
  return { handle: created.handle, tpm2b: created.publicArea, persistent: false }
}

/** Step 3: the stored AK if it matches and loads, else a new one saved to `agent_data.json`. */
async function bringUpAk(
  client: TpmClient,
  opts: HardwareAgentTpmOptions,
  ek: { handle: number; tpm2b: Uint8Array },
  loaded: number[],
): Promise<{ handle: number; blobs: CreatedKey; reused: boolean }> {
  const log = opts.log ?? (() => {})
  const ekHash = createHash('sha256').update(ek.tpm2b).digest('hex')
  const policy = async () => ({
    kind: 'policy' as const,
    session: await client.endorsementSession(opts.endorsementAuth),
  })
  const stored = readAgentData(opts.agentDataPath)
  if (
    stored !== undefined &&
    stored.ak_hash_alg === opts.hashAlg &&
    stored.ak_sign_alg === opts.signAlg &&
    (stored.ak_enc_alg ?? opts.encAlg) === opts.encAlg &&
    stored.ek_hash === ekHash
  ) {
    const blobs: CreatedKey = {
      publicArea: Uint8Array.from(stored.ak_public),
      privateArea: Uint8Array.from(stored.ak_private),
    }
    try {
      const { handle } = await client.load(ek.handle, await policy(), blobs)
      loaded.push(handle)
      return { handle, blobs, reused: true }
    } catch (err) {
      log('stored AK does not load; creating a new one', {
        error: err instanceof Error ? err.message : String(err),
      })
    }
  }
  const blobs = await client.create(
    ek.handle,
    await policy(),
    akTemplate(opts.encAlg, opts.signAlg, opts.hashAlg),
  )
  const data: AgentData = {
    ak_hash_alg: opts.hashAlg,
    ak_sign_alg: opts.signAlg,
    ak_enc_alg: opts.encAlg,
    ak_public: [...blobs.publicArea],
    ak_private: [...blobs.privateArea],
    ek_hash: ekHash,
  }
  writeFileSync(opts.agentDataPath, JSON.stringify(data), { mode: 0o600 })
  chmodSync(opts.agentDataPath, 0o600)
  const { handle } = await client.load(ek.handle, await policy(), blobs)
  loaded.push(handle)
  return { handle, blobs, reused: false }
}

/**
 * Brings up the agent's TPM identity (EK, EK certificate, AK) in one operation on
 * `opts.access`, and leaves nothing loaded: the AK and a transient EK are kept as saved contexts.
 *
 * @throws {AgentError} on TPM failures (`ERR_AGENT_TPM_RC`, `ERR_AGENT_TRANSPORT`, …).
 */
export async function openHardwareAgentTpm(
  opts: HardwareAgentTpmOptions,
): Promise<HardwareAgentTpm> {
  const log = opts.log ?? (() => {})
  const init = await opts.access.use(async (client) => {
    const loaded: number[] = []
    try {
      log('TPM transport open', { tcti: client.description, connection: opts.access.connection })
      if (opts.startup === true) await client.startup()
      const ek = await bringUpEk(client, opts, loaded)
      log('EK ready', { handle: `0x${ek.handle.toString(16)}`, persistent: ek.persistent })
      const ekCertPem = await readEkCertPem(client, opts.encAlg)
      if (ekCertPem === undefined) log('no EK certificate in NV')
      const ak = await bringUpAk(client, opts, ek, loaded)
      log('AK ready', { handle: `0x${ak.handle.toString(16)}`, reused: ak.reused })
      const pcrAllocation = new Map<HashAlg, number[]>()
      for (const s of await client.getPcrAllocation()) {
        const name = hashAlgName(s.hashAlg)
        if (name !== undefined) pcrAllocation.set(name, s.pcrs)
      }
      const banks = [...pcrAllocation.keys()]
      if (!banks.includes(opts.hashAlg)) {
        throw new AgentError(
          'ERR_AGENT_CONFIG',
          `option tpm_hash_alg: the TPM has no ${opts.hashAlg} PCR bank (has ${banks.join(', ')})`,
        )
      }
      const ekRef: EkRef = ek.persistent
        ? { persistent: true, handle: ek.handle }
        : { persistent: false, context: await client.contextSave(ek.handle) }
      const akContext = await client.contextSave(ak.handle)
      return {
        ek: { ...ekRef, tpm2b: ek.tpm2b },
        ekCertPem,
        ak: { ...ak, context: akContext },
        banks,
        pcrAllocation,
      }
    } finally {
      for (const h of loaded) await client.flushContext(h).catch(() => undefined)
    }
  })
  return new HardwareAgentTpm({ opts, ...init })
}
