/**
 * Parser for one line of the IMA ASCII measurement list (`ascii_runtime_measurements`,
 * wire-formats §7.1), rebuilding the exact template data the kernel hashed:
 *
 * - `d` (template `ima`): the raw 20-byte (sha1) or 16-byte (md5) digest, no length;
 * - `n` (template `ima`): the name NUL-padded to 256 bytes (name ≤ 255 bytes);
 * - `d-ng`: `u32le len ‖ "<alg>:" ‖ 00 ‖ digest` (a digest without `alg:` is sha1/md5 by size,
 *   encoded with the `sha1:` / `md5:` prefix, as upstream `keylime/ima/ast.py` does);
 * - `d-ngv2`: `u32le len ‖ "<type>:<alg>:" ‖ 00 ‖ digest` (`type` is `ima` or `verity`);
 * - `n-ng`: `u32le len+1 ‖ name ‖ 00`;
 * - `sig`, `buf`, `modsig`: `u32le len ‖ bytes` (len 0 when the field is empty);
 * - `d-modsig`: like `d-ng`, or `u32le 0` when empty.
 *
 * Field splitting follows upstream: `ima` and `ima-ng` take the rest of the line as the name (it
 * may contain spaces); the other templates split on single spaces and the last field takes the
 * rest. The parser reuses one growable scratch buffer, so parsing a long list allocates only the
 * small {@link ImaEntry} objects and the strings sliced from the line.
 *
 * @module
 */

import { ImaError, isImaError } from './errors.ts'
import { decodeHexInto } from './hex.ts'
import { type ImaEntry, type ImaTemplate, isImaTemplate } from './ima-entry.ts'

/** Longest accepted line (ima-buf entries can carry certificates and kernel buffers). */
export const MAX_LINE_LENGTH = 4 * 1024 * 1024
/** Longest accepted name in bytes (kernel names are at most PATH_MAX plus a few bytes). */
export const MAX_NAME_BYTES = 16 * 1024
/** Longest name of the legacy `ima` template (`TCG_EVENT_NAME_LEN_MAX`). */
const IMA_NAME_MAX = 255

const encoder = new TextEncoder()

/** Streaming parser of ASCII measurement-list lines; one instance per list walk. */
export class AsciiEntryParser {
  #buf = new Uint8Array(4096)
  #pos = 0
  #line = 0

  #ensure(extra: number): void {
    const need = this.#pos + extra
    if (need <= this.#buf.length) return
    let size = this.#buf.length * 2
    while (size < need) size *= 2
    const next = new Uint8Array(size)
    next.set(this.#buf.subarray(0, this.#pos))
    this.#buf = next
  }

  #u32(v: number): void {
    this.#ensure(4)
    const b = this.#buf
    const p = this.#pos
    b[p] = v & 0xff
    b[p + 1] = (v >>> 8) & 0xff
    b[p + 2] = (v >>> 16) & 0xff
    b[p + 3] = (v >>> 24) & 0xff
    this.#pos = p + 4
  }

  #fail(
    code:
      | 'ERR_IMA_LINE_FORMAT'
      | 'ERR_IMA_BAD_HEX'
      | 'ERR_IMA_BAD_FIELD'
      | 'ERR_IMA_LIMIT'
      | 'ERR_IMA_UNKNOWN_TEMPLATE',
    msg: string,
  ): never {
    throw new ImaError(code, msg, { line: this.#line })
  }

  /** Writes ASCII/UTF-8 text; returns the number of bytes written. */
  #text(s: string, start: number, end: number): number {
    const n = end - start
    this.#ensure(n)
    const b = this.#buf
    let p = this.#pos
    let ascii = true
    for (let i = start; i < end; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) {
        ascii = false
        break
      }
      b[p++] = c
    }
    if (ascii) {
      this.#pos = p
      return n
    }
    const bytes = encoder.encode(s.slice(start, end))
    this.#ensure(bytes.length)
    this.#buf.set(bytes, this.#pos)
    this.#pos += bytes.length
    return bytes.length
  }

  #hex(s: string, start: number, end: number, what: string): number {
    this.#ensure((end - start) >>> 1)
    const n = decodeHexInto(s, start, end, this.#buf, this.#pos)
    if (n < 0) this.#fail('ERR_IMA_BAD_HEX', `${what} is not valid hex`)
    this.#pos += n
    return n
  }

  /** `u32 len ‖ bytes` from a hex field; returns a copy of the bytes or null when empty. */
  #lenHex(s: string, start: number, end: number, what: string): Uint8Array | null {
    const at = this.#pos
    this.#u32(0)
    const n = this.#hex(s, start, end, what)
    const b = this.#buf
    b[at] = n & 0xff
    b[at + 1] = (n >>> 8) & 0xff
    b[at + 2] = (n >>> 16) & 0xff
    b[at + 3] = (n >>> 24) & 0xff
    return n === 0 ? null : b.slice(at + 4, at + 4 + n)
  }

  /**
   * Writes the `sig` field of an ima-sig / ima-sigv2 entry. A signature that is not hex or whose
   * `signature_v2_hdr` framing is wrong is dropped, as upstream's `ImaSig.create_signature` does
   * (`keylime/ima/ast.py`): the entry keeps parsing with an empty field, so its template hash
   * no longer matches (`ima.validation.ima_hash`) and the file falls back to the digests.
   */
  #sigField(s: string, start: number, end: number): Uint8Array | null {
    const at = this.#pos
    try {
      const sig = this.#lenHex(s, start, end, 'signature')
      if (sig === null || hasSigHeaderFraming(sig)) return sig
    } catch (e) {
      if (!isImaError(e, 'ERR_IMA_BAD_HEX')) throw e
    }
    this.#pos = at
    this.#u32(0)
    return null
  }

  /**
   * Writes a d-ng / d-ngv2 field from `[start, end)`; returns algorithm, type and lowercase hex.
   * `v2` expects `type:alg:hex`.
   */
  #digestNg(s: string, start: number, end: number, v2: boolean): [string, string, string] {
    const c1 = s.indexOf(':', start)
    let type = ''
    let alg: string
    let hexStart: number
    if (v2) {
      const c2 = c1 < 0 || c1 >= end ? -1 : s.indexOf(':', c1 + 1)
      if (c1 < 0 || c2 < 0 || c2 >= end)
        this.#fail('ERR_IMA_BAD_FIELD', 'd-ngv2 digest needs type:alg:hex')
      type = s.slice(start, c1)
      if (type !== 'ima' && type !== 'verity')
        this.#fail('ERR_IMA_BAD_FIELD', 'd-ngv2 digest type must be ima or verity')
      alg = s.slice(c1 + 1, c2)
      hexStart = c2 + 1
    } else if (c1 < 0 || c1 >= end) {
      const n = end - start
      alg = n === 40 ? 'sha1' : n === 32 ? 'md5' : ''
      if (alg === '')
        this.#fail('ERR_IMA_BAD_FIELD', 'digest without algorithm is neither sha1 nor md5')
      hexStart = start
    } else {
      alg = s.slice(start, c1)
      hexStart = c1 + 1
      if (s.indexOf(':', hexStart) >= 0 && s.indexOf(':', hexStart) < end) {
        this.#fail('ERR_IMA_BAD_FIELD', 'digest has more than one colon')
      }
    }
    if (alg.length === 0 || alg.length > 32)
      this.#fail('ERR_IMA_BAD_FIELD', 'bad digest algorithm name')
    const lenAt = this.#pos
    this.#u32(0)
    const prefix = type === '' ? alg : `${type}:${alg}`
    const prefixLen = this.#text(prefix, 0, prefix.length)
    this.#ensure(2)
    this.#buf[this.#pos++] = 0x3a
    this.#buf[this.#pos++] = 0
    const n = this.#hex(s, hexStart, end, 'digest')
    if (n === 0) this.#fail('ERR_IMA_BAD_FIELD', 'empty digest')
    const total = prefixLen + 2 + n
    const b = this.#buf
    b[lenAt] = total & 0xff
    b[lenAt + 1] = (total >>> 8) & 0xff
    b[lenAt + 2] = (total >>> 16) & 0xff
    b[lenAt + 3] = (total >>> 24) & 0xff
    let hex = s.slice(hexStart, end)
    if (/[A-F]/.test(hex)) hex = hex.toLowerCase()
    return [alg, type, hex]
  }

  #nameNg(s: string, start: number, end: number): void {
    const lenAt = this.#pos
    this.#u32(0)
    const n = this.#text(s, start, end)
    if (n > MAX_NAME_BYTES) this.#fail('ERR_IMA_LIMIT', 'name too long')
    this.#ensure(1)
    this.#buf[this.#pos++] = 0
    const total = n + 1
    const b = this.#buf
    b[lenAt] = total & 0xff
    b[lenAt + 1] = (total >>> 8) & 0xff
    b[lenAt + 2] = (total >>> 16) & 0xff
    b[lenAt + 3] = (total >>> 24) & 0xff
  }

  /**
   * Parses one line (without its newline). `lineNo` is used in errors and stored in the entry.
   *
   * @throws {ImaError} `ERR_IMA_LINE_FORMAT`, `ERR_IMA_BAD_HEX`, `ERR_IMA_BAD_FIELD`,
   *   `ERR_IMA_UNKNOWN_TEMPLATE`, `ERR_IMA_LIMIT`.
   */
  parse(s: string, lineNo: number): ImaEntry {
    this.#line = lineNo
    this.#pos = 0
    const len = s.length
    if (len > MAX_LINE_LENGTH) this.#fail('ERR_IMA_LIMIT', 'line too long')
    const sp1 = s.indexOf(' ')
    const sp2 = sp1 < 0 ? -1 : s.indexOf(' ', sp1 + 1)
    const sp3 = sp2 < 0 ? -1 : s.indexOf(' ', sp2 + 1)
    if (sp3 < 0) this.#fail('ERR_IMA_LINE_FORMAT', 'expected "pcr template-hash template fields"')
    if (sp1 === 0 || sp1 > 10) this.#fail('ERR_IMA_LINE_FORMAT', 'bad PCR field')
    let pcr = 0
    for (let i = 0; i < sp1; i++) {
      const c = s.charCodeAt(i) - 48
      if (c < 0 || c > 9) this.#fail('ERR_IMA_LINE_FORMAT', 'PCR field is not a number')
      pcr = pcr * 10 + c
    }
    let templateHash = s.slice(sp1 + 1, sp2)
    if (
      templateHash.length === 0 ||
      templateHash.length > 128 ||
      !/^[0-9a-fA-F]*$/.test(templateHash) ||
      (templateHash.length & 1) !== 0
    ) {
      this.#fail('ERR_IMA_BAD_HEX', 'template hash is not valid hex')
    }
    if (/[A-F]/.test(templateHash)) templateHash = templateHash.toLowerCase()
    const tname = s.slice(sp2 + 1, sp3)
    if (!isImaTemplate(tname)) this.#fail('ERR_IMA_UNKNOWN_TEMPLATE', 'unsupported template')
    const template: ImaTemplate = tname
    const f = sp3 + 1
    let digestAlg: string
    let digestType = ''
    let digest: string
    let name: string
    let sig: Uint8Array | null = null
    let buf: Uint8Array | null = null
    if (template === 'ima') {
      const sp = s.indexOf(' ', f)
      if (sp < 0) this.#fail('ERR_IMA_LINE_FORMAT', 'ima entry needs digest and name')
      const n = sp - f
      digestAlg = n === 40 ? 'sha1' : n === 32 ? 'md5' : ''
      if (digestAlg === '') this.#fail('ERR_IMA_BAD_FIELD', 'ima digest is neither sha1 nor md5')
      this.#hex(s, f, sp, 'digest')
      digest = s.slice(f, sp).toLowerCase()
      const nameAt = this.#pos
      const nb = this.#text(s, sp + 1, len)
      if (nb > IMA_NAME_MAX) this.#fail('ERR_IMA_LIMIT', 'ima template name longer than 255 bytes')
      this.#ensure(IMA_NAME_MAX + 1 - nb)
      this.#buf.fill(0, nameAt + nb, nameAt + IMA_NAME_MAX + 1)
      this.#pos = nameAt + IMA_NAME_MAX + 1
      name = s.slice(sp + 1)
    } else if (template === 'ima-ng' || template === 'ima-ngv2') {
      const sp = s.indexOf(' ', f)
      if (sp < 0) this.#fail('ERR_IMA_LINE_FORMAT', `${template} entry needs digest and name`)
      ;[digestAlg, digestType, digest] = this.#digestNg(s, f, sp, template === 'ima-ngv2')
      this.#nameNg(s, sp + 1, len)
      name = s.slice(sp + 1)
    } else if (template === 'ima-sig' || template === 'ima-sigv2' || template === 'ima-buf') {
      const a = s.indexOf(' ', f)
      const b = a < 0 ? -1 : s.indexOf(' ', a + 1)
      if (b < 0) this.#fail('ERR_IMA_LINE_FORMAT', `${template} entry needs 3 fields`)
      ;[digestAlg, digestType, digest] = this.#digestNg(s, f, a, template === 'ima-sigv2')
      this.#nameNg(s, a + 1, b)
      name = s.slice(a + 1, b)
      if (template === 'ima-buf') buf = this.#lenHex(s, b + 1, len, 'buffer')
      else sig = this.#sigField(s, b + 1, len)
    } else {
      // ima-modsig: d-ng n-ng sig d-modsig modsig
      const a = s.indexOf(' ', f)
      const b = a < 0 ? -1 : s.indexOf(' ', a + 1)
      const c = b < 0 ? -1 : s.indexOf(' ', b + 1)
      const d = c < 0 ? -1 : s.indexOf(' ', c + 1)
      if (d < 0) this.#fail('ERR_IMA_LINE_FORMAT', 'ima-modsig entry needs 5 fields')
      ;[digestAlg, digestType, digest] = this.#digestNg(s, f, a, false)
      this.#nameNg(s, a + 1, b)
      name = s.slice(a + 1, b)
      sig = this.#sigField(s, b + 1, c)
      if (c + 1 === d) this.#u32(0)
      else this.#digestNg(s, c + 1, d, false)
      this.#lenHex(s, d + 1, len, 'modsig')
    }
    return {
      line: lineNo,
      pcr,
      templateHash,
      template,
      digestAlg,
      digestType,
      digest,
      name,
      sig,
      buf,
      templateData: this.#buf.subarray(0, this.#pos),
    }
  }
}

/**
 * Whether an IMA signature has `signature_v2_hdr` framing: `type u8 ‖ version u8 ‖ hash_algo u8
 * ‖ keyid u32be ‖ sig_size u16be ‖ sig` with `9 + sig_size` equal to the field length. The kernel
 * records the xattr without checking it, so a badly framed one is dropped, not an error.
 */
export function hasSigHeaderFraming(sig: Uint8Array): boolean {
  return sig.length >= 9 && 9 + (((sig[7] as number) << 8) | (sig[8] as number)) === sig.length
}
