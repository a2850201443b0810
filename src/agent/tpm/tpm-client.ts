/**
 * TPM 2.0 commands in TypeScript over a {@link TpmTransport}: marshalling with src/tpm's
 * ByteWriter, response parsing with its bounds-checked ByteReader (wire-formats §6.1–§6.5).
 *
 * Sessions are the minimum Keylime needs (§6.3): password sessions (`TPM_RS_PW`, empty or
 * configured auth) and unsalted, unbound policy sessions satisfied by
 * `PolicySecret(TPM_RH_ENDORSEMENT)` used with attrs 0, so the TPM flushes each after one use.
 * Transient warnings (YIELDED, TESTING, RETRY) are retried a few times with a short back-off.
 *
 * @module
 */

import { randomBytes } from 'node:crypto'
import { ByteReader } from '../../tpm/byte-reader.ts'
import { ByteWriter } from '../../tpm/byte-writer.ts'
import {
  TPM_ALG_ID,
  TPM_RC,
  TPM_RC_RETRYABLE,
  TPM_RH,
  TPM_ST,
  rcName,
} from '../../tpm/constants.ts'
import { type PcrSelection, readPcrSelection, writePcrSelection } from '../../tpm/pcr-selection.ts'
import { readTpmtSignature } from '../../tpm/signature.ts'
import { AgentError } from '../errors.ts'
import type { TpmTransport } from '../transport/tpm-transport.ts'
import {
  TPM_CAP,
  TPM_CC,
  TPM_PT,
  TPM_SE_POLICY,
  TPM_SU_CLEAR,
  TPMA_NV,
  type TpmCcName,
} from './command-codes.ts'

/** An authorization for one handle of a command. */
export type TpmAuth = { kind: 'password'; value?: Uint8Array } | { kind: 'policy'; session: number }

/** A parsed response: output handles and the parameter area. */
interface TpmResponse {
  handles: number[]
  params: ByteReader
}

/** The result of CreatePrimary / Load: a transient handle and the public area. */
export interface LoadedObject {
  /** Transient handle (0x80xxxxxx). */
  handle: number
  /** TPM2B_PUBLIC bytes (with the size prefix). */
  publicArea: Uint8Array
  /** TPM2B_NAME contents. */
  name: Uint8Array
}

/** The result of Create: the new key's blobs (what the agent stores to reload the AK). */
export interface CreatedKey {
  /** TPM2B_PRIVATE bytes (with size prefix). */
  privateArea: Uint8Array
  /** TPM2B_PUBLIC bytes (with size prefix). */
  publicArea: Uint8Array
}

/** NV index public data. */
export interface NvPublic {
  /** TPMA_NV. */
  attributes: number
  /** Data size in bytes. */
  dataSize: number
}

/** A signed attestation (TPM2_Quote or TPM2_Certify) as the TPM returns it. */
export interface TpmQuote {
  /** TPMS_ATTEST bytes (TPM2B_ATTEST contents). */
  attest: Uint8Array
  /** TPMT_SIGNATURE bytes. */
  signature: Uint8Array
}

/** Options of {@link TpmClient}. */
export interface TpmClientOptions {
  /** Retries of a YIELDED/TESTING/RETRY answer (default 10). */
  retries?: number
  /** Back-off unit in ms (attempt × unit; default 50). */
  retryDelayMs?: number
}

const EMPTY = new Uint8Array(0)
/** Empty TPM2B_SENSITIVE_CREATE: size 4, empty userAuth, empty data. */
const EMPTY_SENSITIVE_CREATE = Uint8Array.of(0x00, 0x04, 0x00, 0x00, 0x00, 0x00)

/** Masks a response code to the value {@link TPM_RC} names (drops handle/param/session index). */
export function baseRc(rc: number): number {
  return (rc & 0x080) !== 0 ? rc & 0x0bf : rc
}

/** `TPM_RC_… (0x…)` for messages. */
export function describeRc(rc: number): string {
  const name = rcName(baseRc(rc))
  return `${name === undefined ? 'TPM_RC' : `TPM_RC_${name}`} (0x${rc.toString(16).padStart(3, '0')})`
}

/**
 * The command layer. All methods are async and go through one transport (serialized there).
 *
 * @example
 * ```ts
 * const tpm = new TpmClient(await openTransport())
 * const pcrs = await tpm.pcrRead('sha256', [0, 10])
 * ```
 */
export class TpmClient {
  readonly #t: TpmTransport
  readonly #retries: number
  readonly #retryDelayMs: number
  #nvBufferMax: number | undefined

  constructor(transport: TpmTransport, opts: TpmClientOptions = {}) {
    this.#t = transport
    this.#retries = opts.retries ?? 10
    this.#retryDelayMs = opts.retryDelayMs ?? 50
  }

  /** The underlying transport's description. */
  get description(): string {
    return this.#t.description
  }

  /** Closes the transport. */
  close(): Promise<void> {
    return this.#t.close()
  }

  // ------------------------------------------------------------------------------------------
  // Marshalling core (Part 1 §18, wire-formats §6.3)
  // ------------------------------------------------------------------------------------------

  /**
   * Runs one command. `auths` (if given) pairs with the first `auths.length` handles.
   *
   * @throws {AgentError} `ERR_AGENT_TPM_RC` with `rc` for a non-zero response code (after
   *   retries of transient warnings), `ERR_AGENT_TPM_RESPONSE` for a malformed response.
   */
  async #exec(
    cc: TpmCcName,
    handles: readonly number[],
    auths: readonly TpmAuth[] | undefined,
    params: Uint8Array,
    outHandles = 0,
  ): Promise<TpmResponse> {
    const w = new ByteWriter({ capacity: 64 + params.byteLength })
    const tag = auths === undefined ? TPM_ST.NO_SESSIONS : TPM_ST.SESSIONS
    w.u16(tag).u32(0).u32(TPM_CC[cc])
    for (const h of handles) w.u32(h)
    if (auths !== undefined) {
      const a = new ByteWriter({ capacity: 32 })
      for (const auth of auths) {
        if (auth.kind === 'password') {
          a.u32(TPM_RH.PW)
            .tpm2b(EMPTY)
            .u8(0)
            .tpm2b(auth.value ?? EMPTY)
        } else {
          a.u32(auth.session).tpm2b(EMPTY).u8(0).tpm2b(EMPTY)
        }
      }
      const area = a.finish()
      w.u32(area.byteLength).bytes(area)
    }
    w.bytes(params)
    const cmd = w.finish()
    new DataView(cmd.buffer, cmd.byteOffset, cmd.byteLength).setUint32(2, cmd.byteLength)

    for (let attempt = 0; ; attempt++) {
      const rsp = await this.#t.transmit(cmd)
      const r = new ByteReader(rsp)
      let rc: number
      let size: number
      let rtag: number
      try {
        rtag = r.u16()
        size = r.u32()
        rc = r.u32()
      } catch (cause) {
        throw new AgentError('ERR_AGENT_TPM_RESPONSE', `${cc}: short response`, { cause })
      }
      if (size !== rsp.byteLength) {
        throw new AgentError('ERR_AGENT_TPM_RESPONSE', `${cc}: response size field mismatch`)
      }
      if (rc !== TPM_RC.SUCCESS) {
        if (TPM_RC_RETRYABLE.has(rc) && attempt < this.#retries) {
          await Bun.sleep(this.#retryDelayMs * (attempt + 1))
          continue
        }
        throw new AgentError('ERR_AGENT_TPM_RC', `${cc}: ${describeRc(rc)}`, { rc })
      }
      try {
        const hs: number[] = []
        for (let i = 0; i < outHandles; i++) hs.push(r.u32())
        let paramBytes: Uint8Array
        if (rtag === TPM_ST.SESSIONS) {
          const n = r.u32()
          paramBytes = r.bytes(n)
          // the per-session response areas that follow are not needed (no HMAC sessions)
        } else {
          paramBytes = r.rest()
        }
        return { handles: hs, params: new ByteReader(paramBytes) }
      } catch (cause) {
        throw new AgentError('ERR_AGENT_TPM_RESPONSE', `${cc}: malformed response`, { cause })
      }
    }
  }

  /** Runs `fn` on a response reader, turning parse errors into ERR_AGENT_TPM_RESPONSE. */
  #parse<T>(cc: TpmCcName, fn: () => T): T {
    try {
      return fn()
    } catch (cause) {
      throw new AgentError('ERR_AGENT_TPM_RESPONSE', `${cc}: malformed response`, { cause })
    }
  }

  // ------------------------------------------------------------------------------------------
  // Commands
  // ------------------------------------------------------------------------------------------

  /** TPM2_Startup(CLEAR); "already initialized" (TPM_RC_INITIALIZE) counts as success. */
  async startup(): Promise<void> {
    try {
      await this.#exec('Startup', [], undefined, Uint8Array.of(0, TPM_SU_CLEAR))
    } catch (err) {
      if (err instanceof AgentError && err.rc === TPM_RC.INITIALIZE) return
      throw err
    }
  }

  /** TPM2_GetRandom. */
  async getRandom(n: number): Promise<Uint8Array> {
    const { params } = await this.#exec(
      'GetRandom',
      [],
      undefined,
      new ByteWriter().u16(n).finish(),
    )
    return this.#parse('GetRandom', () => params.tpm2b())
  }

  /** TPM2_GetCapability(TPM_CAP_HANDLES) from `first`: the handles, up to `max`. */
  async getHandles(first: number, max = 256): Promise<number[]> {
    const out: number[] = []
    let next = first
    const top = (first & 0xff000000) >>> 0
    for (;;) {
      const p = new ByteWriter().u32(TPM_CAP.HANDLES).u32(next).u32(max).finish()
      const { params } = await this.#exec('GetCapability', [], undefined, p)
      const more = this.#parse('GetCapability', () => {
        const moreData = params.u8()
        params.u32() // capability
        const count = params.u32()
        for (let i = 0; i < count; i++) out.push(params.u32())
        return moreData === 1
      })
      const last = out[out.length - 1]
      if (!more || last === undefined || out.length >= max) break
      next = last + 1
      if ((next & 0xff000000) >>> 0 !== top) break
    }
    return out.filter((h) => (h & 0xff000000) >>> 0 === top)
  }

  /** TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES) for one property; undefined if not reported. */
  async getProperty(property: number): Promise<number | undefined> {
    const p = new ByteWriter().u32(TPM_CAP.TPM_PROPERTIES).u32(property).u32(1).finish()
    const { params } = await this.#exec('GetCapability', [], undefined, p)
    return this.#parse('GetCapability', () => {
      params.u8()
      params.u32()
      const count = params.u32()
      for (let i = 0; i < count; i++) {
        const prop = params.u32()
        const value = params.u32()
        if (prop === property) return value
      }
      return undefined
    })
  }

  /** TPM2_GetCapability(TPM_CAP_PCRS): the banks with at least one PCR allocated. */
  async getPcrBanks(): Promise<number[]> {
    return (await this.getPcrAllocation()).map((s) => s.hashAlg)
  }

  /** TPM2_GetCapability(TPM_CAP_PCRS): each bank with its allocated PCRs (empty banks left out). */
  async getPcrAllocation(): Promise<PcrSelection[]> {
    const p = new ByteWriter().u32(TPM_CAP.PCRS).u32(0).u32(16).finish()
    const { params } = await this.#exec('GetCapability', [], undefined, p)
    return this.#parse('GetCapability', () => {
      params.u8()
      params.u32()
      return readPcrSelection(params).filter((s) => s.pcrs.length > 0)
    })
  }

  /** TPM2_ReadPublic: the object's TPM2B_PUBLIC and name. */
  async readPublic(handle: number): Promise<LoadedObject> {
    const { params } = await this.#exec('ReadPublic', [handle], undefined, EMPTY)
    return this.#parse('ReadPublic', () => {
      const pub = params.tpm2b()
      const name = params.tpm2b()
      return { handle, publicArea: tpm2bBytes(pub), name }
    })
  }

  /**
   * TPM2_CreatePrimary under `hierarchy` with a TPMT_PUBLIC template and empty sensitive data.
   * `auth` is the hierarchy's password (empty by default).
   */
  async createPrimary(
    hierarchy: number,
    template: Uint8Array,
    auth: Uint8Array = EMPTY,
  ): Promise<LoadedObject> {
    const p = new ByteWriter({ capacity: template.byteLength + 32 })
      .bytes(EMPTY_SENSITIVE_CREATE)
      .tpm2b(template)
      .tpm2b(EMPTY)
      .u32(0)
      .finish()
    const { handles, params } = await this.#exec(
      'CreatePrimary',
      [hierarchy],
      [{ kind: 'password', value: auth }],
      p,
      1,
    )
    return this.#parse('CreatePrimary', () => {
      const pub = params.tpm2b()
      params.tpm2b() // creationData
      params.tpm2b() // creationHash
      params.u16() // creationTicket.tag
      params.u32() // creationTicket.hierarchy
      params.tpm2b() // creationTicket.digest
      const name = params.tpm2b()
      return { handle: handles[0]!, publicArea: tpm2bBytes(pub), name }
    })
  }

  /** TPM2_NV_ReadPublic; undefined when the index is not defined. */
  async nvReadPublic(index: number): Promise<NvPublic | undefined> {
    let res: TpmResponse
    try {
      res = await this.#exec('NV_ReadPublic', [index], undefined, EMPTY)
    } catch (err) {
      if (err instanceof AgentError && err.code === 'ERR_AGENT_TPM_RC') return undefined
      throw err
    }
    const { params } = res
    return this.#parse('NV_ReadPublic', () => {
      const nvPublic = new ByteReader(params.tpm2b())
      nvPublic.u32() // nvIndex
      nvPublic.u16() // nameAlg
      const attributes = nvPublic.u32()
      nvPublic.tpm2b() // authPolicy
      const dataSize = nvPublic.u16()
      nvPublic.end()
      return { attributes, dataSize }
    })
  }

  /**
   * Reads a whole NV index (TPM2_NV_Read in chunks of NV_BUFFER_MAX), authorizing with the index
   * itself (AUTHREAD) or the owner (OWNERREAD) and an empty password. Undefined if not defined.
   */
  async nvReadAll(index: number, ownerAuth: Uint8Array = EMPTY): Promise<Uint8Array | undefined> {
    const pub = await this.nvReadPublic(index)
    if (pub === undefined) return undefined
    const authHandle =
      (pub.attributes & TPMA_NV.AUTHREAD) !== 0
        ? index
        : (pub.attributes & TPMA_NV.OWNERREAD) !== 0
          ? TPM_RH.OWNER
          : index
    const auth = authHandle === TPM_RH.OWNER ? ownerAuth : EMPTY
    this.#nvBufferMax ??= (await this.getProperty(TPM_PT.NV_BUFFER_MAX)) ?? 1024
    const out = new Uint8Array(pub.dataSize)
    for (let off = 0; off < pub.dataSize;) {
      const n = Math.min(this.#nvBufferMax, pub.dataSize - off)
      const { params } = await this.#exec(
        'NV_Read',
        [authHandle, index],
        [{ kind: 'password', value: auth }],
        new ByteWriter().u16(n).u16(off).finish(),
      )
      const chunk = this.#parse('NV_Read', () => params.tpm2b())
      if (chunk.byteLength === 0) break
      out.set(chunk.subarray(0, n), off)
      off += chunk.byteLength
    }
    return out
  }

  /** TPM2_StartAuthSession: an unsalted, unbound SHA-256 policy session (§6.5). */
  async startPolicySession(): Promise<number> {
    const p = new ByteWriter()
      .tpm2b(randomBytes(32))
      .tpm2b(EMPTY)
      .u8(TPM_SE_POLICY)
      .u16(TPM_ALG_ID.NULL)
      .u16(TPM_ALG_ID.SHA256)
      .finish()
    const { handles } = await this.#exec(
      'StartAuthSession',
      [TPM_RH.NULL, TPM_RH.NULL],
      undefined,
      p,
      1,
    )
    return handles[0]!
  }

  /** TPM2_PolicySecret(authHandle, session) with the authorizing entity's password. */
  async policySecret(authHandle: number, session: number, auth: Uint8Array = EMPTY): Promise<void> {
    const p = new ByteWriter().tpm2b(EMPTY).tpm2b(EMPTY).tpm2b(EMPTY).u32(0).finish()
    await this.#exec('PolicySecret', [authHandle, session], [{ kind: 'password', value: auth }], p)
  }

  /**
   * A fresh policy session satisfied by PolicySecret(TPM_RH_ENDORSEMENT): authorizes the EK
   * (TCG EK profile policy A). The TPM flushes it after the one command it authorizes.
   */
  async endorsementSession(endorsementAuth: Uint8Array = EMPTY): Promise<number> {
    const s = await this.startPolicySession()
    try {
      await this.policySecret(TPM_RH.ENDORSEMENT, s, endorsementAuth)
    } catch (err) {
      await this.flushContext(s).catch(() => undefined)
      throw err
    }
    return s
  }

  /** TPM2_Create under `parent`, authorized by `parentAuth`. */
  async create(parent: number, parentAuth: TpmAuth, template: Uint8Array): Promise<CreatedKey> {
    const p = new ByteWriter({ capacity: template.byteLength + 32 })
      .bytes(EMPTY_SENSITIVE_CREATE)
      .tpm2b(template)
      .tpm2b(EMPTY)
      .u32(0)
      .finish()
    const { params } = await this.#exec('Create', [parent], [parentAuth], p)
    return this.#parse('Create', () => {
      const priv = params.tpm2b()
      const pub = params.tpm2b()
      return { privateArea: tpm2bBytes(priv), publicArea: tpm2bBytes(pub) }
    })
  }

  /** TPM2_Load of stored blobs (TPM2B_PRIVATE and TPM2B_PUBLIC, size prefixes included). */
  async load(parent: number, parentAuth: TpmAuth, key: CreatedKey): Promise<LoadedObject> {
    const p = new ByteWriter({ capacity: key.privateArea.byteLength + key.publicArea.byteLength })
      .bytes(key.privateArea)
      .bytes(key.publicArea)
      .finish()
    const { handles, params } = await this.#exec('Load', [parent], [parentAuth], p, 1)
    const name = this.#parse('Load', () => params.tpm2b())
    return { handle: handles[0]!, publicArea: key.publicArea, name }
  }

  /**
   * TPM2_ActivateCredential: `activateHandle` (AK, password auth) and `keyHandle` (EK,
   * authorized by `keyAuth`, a policy session for an EK). Returns the credential (certInfo).
   */
  async activateCredential(
    activateHandle: number,
    keyHandle: number,
    keyAuth: TpmAuth,
    idObject: Uint8Array,
    encryptedSecret: Uint8Array,
  ): Promise<Uint8Array> {
    const p = new ByteWriter().tpm2b(idObject).tpm2b(encryptedSecret).finish()
    const { params } = await this.#exec(
      'ActivateCredential',
      [activateHandle, keyHandle],
      [{ kind: 'password' }, keyAuth],
      p,
    )
    return this.#parse('ActivateCredential', () => params.tpm2b())
  }

  /**
   * TPM2_PCR_Read of `pcrs` in bank `hashAlg` (a TPM_ALG_ID), looping because a TPM returns at
   * most 8 digests per call. Returns one digest list per call, in ascending PCR order.
   */
  async pcrRead(hashAlg: number, pcrs: readonly number[]): Promise<Uint8Array[][]> {
    let remaining = [...new Set(pcrs)].sort((a, b) => a - b)
    const groups: Uint8Array[][] = []
    while (remaining.length > 0) {
      const w = new ByteWriter()
      writePcrSelection(w, [{ hashAlg, pcrs: remaining }])
      const { params } = await this.#exec('PCR_Read', [], undefined, w.finish())
      const { got, digests } = this.#parse('PCR_Read', () => {
        params.u32() // pcrUpdateCounter
        const sel: PcrSelection[] = readPcrSelection(params)
        const count = params.u32()
        const ds: Uint8Array[] = []
        for (let i = 0; i < count; i++) ds.push(params.tpm2b())
        return { got: sel.flatMap((s) => (s.hashAlg === hashAlg ? s.pcrs : [])), digests: ds }
      })
      if (got.length === 0 || digests.length !== got.length) {
        throw new AgentError('ERR_AGENT_TPM_RESPONSE', 'PCR_Read: bank or PCRs not allocated')
      }
      groups.push(digests)
      const done = new Set(got)
      remaining = remaining.filter((i) => !done.has(i))
    }
    return groups
  }

  /** TPM2_PCR_Reset (PCR 16 and 23 are resettable from locality 0). */
  async pcrReset(pcr: number): Promise<void> {
    await this.#exec('PCR_Reset', [pcr], [{ kind: 'password' }], EMPTY)
  }

  /** TPM2_PCR_Extend with one digest per bank (`hashAlg` TPM_ALG_ID → digest). */
  async pcrExtend(
    pcr: number,
    digests: ReadonlyArray<{ hashAlg: number; digest: Uint8Array }>,
  ): Promise<void> {
    const w = new ByteWriter().u32(digests.length)
    for (const d of digests) w.u16(d.hashAlg).bytes(d.digest)
    await this.#exec('PCR_Extend', [pcr], [{ kind: 'password' }], w.finish())
  }

  /**
   * TPM2_Quote with `signHandle` (password auth), `qualifyingData` (the nonce bytes), the key's
   * own scheme (TPM_ALG_NULL) and the selection.
   */
  async quote(
    signHandle: number,
    qualifyingData: Uint8Array,
    selection: readonly PcrSelection[],
  ): Promise<TpmQuote> {
    const w = new ByteWriter().tpm2b(qualifyingData).u16(TPM_ALG_ID.NULL)
    writePcrSelection(w, selection)
    const { params } = await this.#exec('Quote', [signHandle], [{ kind: 'password' }], w.finish())
    return this.#parse('Quote', () => {
      const attest = params.tpm2b()
      const start = params.offset
      readTpmtSignature(params)
      const end = params.offset
      return { attest, signature: consumedBytes(params, start, end) }
    })
  }

  /**
   * TPM2_Certify (Part 3 §18.2) of `objectHandle` signed by `signHandle` (both password auth),
   * with `qualifyingData` and the signing key's own scheme (TPM_ALG_NULL). Keylime's push-mode
   * proof of possession certifies the AK with itself (rust-keylime `certify_credential`).
   */
  async certify(
    objectHandle: number,
    signHandle: number,
    qualifyingData: Uint8Array,
  ): Promise<TpmQuote> {
    const p = new ByteWriter().tpm2b(qualifyingData).u16(TPM_ALG_ID.NULL).finish()
    const { params } = await this.#exec(
      'Certify',
      [objectHandle, signHandle],
      [{ kind: 'password' }, { kind: 'password' }],
      p,
    )
    return this.#parse('Certify', () => {
      const attest = params.tpm2b()
      const start = params.offset
      readTpmtSignature(params)
      const end = params.offset
      return { attest, signature: consumedBytes(params, start, end) }
    })
  }

  /**
   * TPM2_ContextSave (Part 3 §28.2): the TPMS_CONTEXT of a loaded object, as marshalled bytes.
   * An object context can be loaded again any number of times (each load makes a new transient
   * handle), so the agent keeps its AK as a saved context and loads it per operation.
   */
  async contextSave(handle: number): Promise<Uint8Array> {
    const { params } = await this.#exec('ContextSave', [handle], undefined, EMPTY)
    return this.#parse('ContextSave', () => {
      const start = params.offset
      params.u64() // sequence
      params.u32() // savedHandle
      params.u32() // hierarchy
      params.tpm2b() // contextBlob
      const end = params.offset
      params.end()
      return consumedBytes(params, start, end)
    })
  }

  /** TPM2_ContextLoad (Part 3 §28.3) of a {@link contextSave} result: the new transient handle. */
  async contextLoad(context: Uint8Array): Promise<number> {
    const { handles } = await this.#exec('ContextLoad', [], undefined, context, 1)
    return handles[0]!
  }

  /** TPM2_FlushContext (the handle is a parameter). */
  async flushContext(handle: number): Promise<void> {
    await this.#exec('FlushContext', [], undefined, new ByteWriter().u32(handle).finish())
  }
}

/** Re-adds the u16 size prefix to TPM2B contents. */
function tpm2bBytes(contents: Uint8Array): Uint8Array {
  return new ByteWriter({ capacity: contents.byteLength + 2 }).tpm2b(contents).finish()
}

/** The bytes [start, end) a reader consumed. */
function consumedBytes(r: ByteReader, start: number, end: number): Uint8Array {
  return new Uint8Array(r.source.subarray(start, end))
}
