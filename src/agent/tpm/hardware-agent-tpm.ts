/**
 * {@link AgentTpm} on a real TPM (or swtpm) through {@link TpmClient}, following rust-keylime's
 * start-up (wire-formats §6.5 "Agent boot order"):
 *
 * 1. EK: a persistent EK made from the default template if the TPM has one (0x8101xxxx, or the
 *    configured `ek_handle`), else CreatePrimary with the L-1 / L-2 template.
 * 2. EK certificate from NV (RSA 0x01c00002, ECC P-256 0x01c0000a) plus the chain at
 *    0x01c00100–0x01c001ff, as PEM.
 * 3. AK: Load the blobs saved in `agent_data.json` (0600) if their algorithms and EK match, else
 *    Create under the EK (PolicySecret(endorsement) session) and save them.
 * 4. After activation, {@link HardwareAgentTpm.releaseEk} flushes a transient EK: swtpm has only
 *    3 transient slots, and a quote needs only the AK.
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
import { AgentError } from '../errors.ts'
import type { PayloadKey } from '../load-or-create-nk.ts'
import { EK_NV, HANDLE_RANGE } from './command-codes.ts'
import { akTemplate, ekTemplate, isDefaultEk } from './ek-templates.ts'
import type { CreatedKey, TpmClient } from './tpm-client.ts'

/** NK binding PCR (wire-formats §1.5). */
const NK_PCR = 16
/** Attempts to get a quote whose PCR digest matches a PCR_Read. */
const QUOTE_ATTEMPTS = 5

/** Options of {@link openHardwareAgentTpm}. */
export interface HardwareAgentTpmOptions {
  /** The command layer. */
  client: TpmClient
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

/** The agent's TPM identity on a real TPM. */
export class HardwareAgentTpm implements AgentTpm {
  readonly hashAlg: HashAlg
  readonly encAlg: EncAlg
  readonly signAlg: SignAlg
  readonly ekTpm2b: Uint8Array
  readonly akTpm2b: Uint8Array
  readonly ekCertPem: string | undefined
  readonly nkPem: string
  readonly akHandle: number
  /** Whether the AK was loaded from `agent_data.json` (false: newly created). */
  readonly akReused: boolean
  /** The TPM banks PCR16 is bound in. */
  readonly banks: readonly HashAlg[]
  readonly #client: TpmClient
  readonly #nk: PayloadKey
  readonly #endorsementAuth: Uint8Array | undefined
  #ekHandle: number | undefined
  readonly #ekPersistent: boolean

  constructor(init: {
    client: TpmClient
    opts: HardwareAgentTpmOptions
    ek: { handle: number; tpm2b: Uint8Array; persistent: boolean }
    ekCertPem: string | undefined
    ak: { handle: number; tpm2b: Uint8Array; reused: boolean }
    banks: HashAlg[]
  }) {
    this.#client = init.client
    this.hashAlg = init.opts.hashAlg
    this.encAlg = init.opts.encAlg
    this.signAlg = init.opts.signAlg
    this.#nk = init.opts.nk
    this.nkPem = init.opts.nk.publicPem
    this.#endorsementAuth = init.opts.endorsementAuth
    this.ekTpm2b = init.ek.tpm2b
    this.#ekHandle = init.ek.handle
    this.#ekPersistent = init.ek.persistent
    this.ekCertPem = init.ekCertPem
    this.akTpm2b = init.ak.tpm2b
    this.akHandle = init.ak.handle
    this.akReused = init.ak.reused
    this.banks = init.banks
  }

  /** The transport description (for the start-up log). */
  get transport(): string {
    return this.#client.description
  }

  async #ek(): Promise<number> {
    if (this.#ekHandle === undefined) {
      const ek = await this.#client.createPrimary(
        TPM_RH.ENDORSEMENT,
        ekTemplate(this.encAlg),
        this.#endorsementAuth,
      )
      this.#ekHandle = ek.handle
    }
    return this.#ekHandle
  }

  /** Flushes the EK if the agent created it (persistent EKs stay). */
  async releaseEk(): Promise<void> {
    if (this.#ekHandle !== undefined && !this.#ekPersistent) {
      await this.#client.flushContext(this.#ekHandle)
      this.#ekHandle = undefined
    }
  }

  async activateCredential(blob: Uint8Array): Promise<Uint8Array> {
    const { credentialBlob, encryptedSecret } = parseCredentialBlob(blob)
    const ek = await this.#ek()
    const session = await this.#client.endorsementSession(this.#endorsementAuth)
    return this.#client.activateCredential(
      this.akHandle,
      ek,
      { kind: 'policy', session },
      credentialBlob,
      encryptedSecret,
    )
  }

  decryptWithNk(ciphertext: Uint8Array): Uint8Array {
    return this.#nk.decrypt(ciphertext)
  }

  /** PCR_Reset(16) and PCR_Extend(16) with H_bank(NK PEM) in every bank we can hash. */
  async #bindNk(): Promise<void> {
    await this.#client.pcrReset(NK_PCR)
    const pem = Buffer.from(this.nkPem, 'utf8')
    await this.#client.pcrExtend(
      NK_PCR,
      this.banks.map((b) => ({
        hashAlg: HASH_ALG_ID[b],
        digest: createHash(b).update(pem).digest(),
      })),
    )
  }

  async quote(nonce: string, pcrs: readonly number[]): Promise<string> {
    const nonceBytes = Buffer.from(nonce, 'utf8')
    if (nonceBytes.byteLength > 64) throw new AgentError('ERR_AGENT_REQUEST', 'nonce too long')
    const indices = [...new Set([...pcrs, NK_PCR])].sort((a, b) => a - b)
    const bank = HASH_ALG_ID[this.hashAlg]
    const selection: PcrSelection[] = [{ hashAlg: bank, pcrs: indices }]
    await this.#bindNk()
    for (let attempt = 1; ; attempt++) {
      const q = await this.#client.quote(this.akHandle, nonceBytes, selection)
      const values = (await this.#client.pcrRead(bank, indices)).flat()
      const attest = parseTpmsAttest(q.attest, { expectType: TPM_ST.ATTEST_QUOTE })
      if (attest.type !== TPM_ST.ATTEST_QUOTE) continue
      const h = createHash(this.hashAlg)
      for (const v of values) h.update(v)
      const digest = h.digest()
      const quoted = attest.quote.pcrDigest
      if (quoted.byteLength === digest.byteLength && timingSafeEqual(quoted, digest)) {
        return serializeQuoteString({
          attest: q.attest,
          signature: q.signature,
          pcrBlob: serializePcrBlob(selection, values),
        })
      }
      if (attempt >= QUOTE_ATTEMPTS) {
        throw new AgentError('ERR_AGENT_TPM_RESPONSE', 'PCRs kept changing during the quote')
      }
    }
  }

  /** Flushes the AK and a transient EK (the kernel RM would do it on close, swtpm would not). */
  async close(): Promise<void> {
    await this.releaseEk().catch(() => undefined)
    await this.#client.flushContext(this.akHandle).catch(() => undefined)
    await this.#client.close()
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

/**
 * Brings up the agent's TPM identity (EK, EK certificate, AK) on `opts.client`.
 *
 * @throws {AgentError} on TPM failures (`ERR_AGENT_TPM_RC`, `ERR_AGENT_TRANSPORT`, …).
 */
export async function openHardwareAgentTpm(
  opts: HardwareAgentTpmOptions,
): Promise<HardwareAgentTpm> {
  const { client } = opts
  const log = opts.log ?? (() => {})
  if (opts.startup === true) await client.startup()

  // 1. EK
  let ek: { handle: number; tpm2b: Uint8Array; persistent: boolean }
  if (opts.ekHandle !== undefined) {
    const obj = await client.readPublic(opts.ekHandle)
    ek = { handle: opts.ekHandle, tpm2b: obj.publicArea, persistent: true }
  } else {
    const found = await findPersistentEk(client, opts.encAlg)
    if (found !== undefined) {
      ek = { ...found, persistent: true }
    } else {
      const created = await client.createPrimary(
        TPM_RH.ENDORSEMENT,
        ekTemplate(opts.encAlg),
        opts.endorsementAuth,
      )
      ek = { handle: created.handle, tpm2b: created.publicArea, persistent: false }
    }
  }
  log('EK ready', {
    handle: `0x${ek.handle.toString(16)}`,
    persistent: ek.persistent,
  })

  // 2. EK certificate
  const ekCertPem = await readEkCertPem(client, opts.encAlg)
  if (ekCertPem === undefined) log('no EK certificate in NV')

  // 3. AK
  const ekHash = createHash('sha256').update(ek.tpm2b).digest('hex')
  const policy = async () => ({
    kind: 'policy' as const,
    session: await client.endorsementSession(opts.endorsementAuth),
  })
  const stored = readAgentData(opts.agentDataPath)
  let ak: { handle: number; tpm2b: Uint8Array; reused: boolean } | undefined
  if (
    stored !== undefined &&
    stored.ak_hash_alg === opts.hashAlg &&
    stored.ak_sign_alg === opts.signAlg &&
    (stored.ak_enc_alg ?? opts.encAlg) === opts.encAlg &&
    stored.ek_hash === ekHash
  ) {
    const key: CreatedKey = {
      publicArea: Uint8Array.from(stored.ak_public),
      privateArea: Uint8Array.from(stored.ak_private),
    }
    try {
      const loaded = await client.load(ek.handle, await policy(), key)
      ak = { handle: loaded.handle, tpm2b: key.publicArea, reused: true }
    } catch (err) {
      log('stored AK does not load; creating a new one', {
        error: err instanceof Error ? err.message : String(err),
      })
    }
  }
  if (ak === undefined) {
    const created = await client.create(
      ek.handle,
      await policy(),
      akTemplate(opts.encAlg, opts.signAlg, opts.hashAlg),
    )
    const data: AgentData = {
      ak_hash_alg: opts.hashAlg,
      ak_sign_alg: opts.signAlg,
      ak_enc_alg: opts.encAlg,
      ak_public: [...created.publicArea],
      ak_private: [...created.privateArea],
      ek_hash: ekHash,
    }
    writeFileSync(opts.agentDataPath, JSON.stringify(data), { mode: 0o600 })
    chmodSync(opts.agentDataPath, 0o600)
    const loaded = await client.load(ek.handle, await policy(), created)
    ak = { handle: loaded.handle, tpm2b: created.publicArea, reused: false }
  }
  log('AK ready', { handle: `0x${ak.handle.toString(16)}`, reused: ak.reused })

  const banks = (await client.getPcrBanks())
    .map((id) => hashAlgName(id))
    .filter((b): b is HashAlg => b !== undefined)
  if (!banks.includes(opts.hashAlg)) {
    throw new AgentError(
      'ERR_AGENT_CONFIG',
      `option tpm_hash_alg: the TPM has no ${opts.hashAlg} PCR bank (has ${banks.join(', ')})`,
    )
  }
  return new HardwareAgentTpm({ client, opts, ek, ekCertPem, ak, banks })
}
