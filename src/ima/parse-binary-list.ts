/**
 * Parser for the IMA binary measurement list (`binary_runtime_measurements`, wire-formats §7.2):
 * per entry `u32 pcr ‖ digest[hashSize] ‖ u32 name_len ‖ name ‖ u32 data_len ‖ data`, little-endian
 * (x86, or any host with `ima_canonical_fmt`). For template `ima` the data has no length prefix
 * and is `digest[20] ‖ u32 name_len ‖ name`; the hashed bytes pad the name to 256 bytes.
 *
 * Entries are returned in the same {@link ImaEntry} shape as the ASCII parser, with
 * `templateData` equal to the hashed bytes, and can be rendered as ASCII lines with
 * {@link entryToAsciiLine} (what the agent sends to the verifier).
 *
 * @module
 */

import { ImaError } from './errors.ts'
import type { ImaEntry } from './ima-entry.ts'
import { isImaTemplate } from './ima-entry.ts'
import { hasSigHeaderFraming, MAX_NAME_BYTES } from './ascii-entry-parser.ts'
import { HASH_SIZE, type HashAlg } from '../tpm/constants.ts'

/** Options of {@link parseBinaryList}. */
export interface BinaryListOptions {
  /** Algorithm of the per-entry template digest (the legacy file: sha1). */
  templateHashAlg?: HashAlg
  /** Upper bound on entries (default 10,000,000). */
  maxEntries?: number
}

const decoder = new TextDecoder('utf-8', { fatal: false })

class Cursor {
  pos = 0
  readonly b: Uint8Array
  readonly dv: DataView
  entry = 0
  constructor(b: Uint8Array) {
    this.b = b
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  }
  fail(msg: string): never {
    throw new ImaError('ERR_IMA_BINARY_FORMAT', `${msg} at offset ${this.pos}`, {
      line: this.entry,
    })
  }
  u32(): number {
    if (this.pos + 4 > this.b.length) this.fail('truncated u32')
    const v = this.dv.getUint32(this.pos, true)
    this.pos += 4
    return v
  }
  bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.b.length) this.fail(`length ${n} runs past the end`)
    const v = this.b.subarray(this.pos, this.pos + n)
    this.pos += n
    return v
  }
}

/** Splits a d-ng / d-ngv2 field value into [type, alg, digest]. */
function splitDigestNg(c: Cursor, v: Uint8Array, v2: boolean): [string, string, Uint8Array] {
  const nul = v.indexOf(0)
  if (nul < 1 || v[nul - 1] !== 0x3a) c.fail('digest field lacks "alg:\\0"')
  const prefix = decoder.decode(v.subarray(0, nul - 1))
  const parts = prefix.split(':')
  const digest = v.subarray(nul + 1)
  if (digest.length === 0) c.fail('empty digest')
  if (v2) {
    if (parts.length !== 2 || (parts[0] !== 'ima' && parts[0] !== 'verity'))
      c.fail('bad d-ngv2 prefix')
    return [parts[0] as string, parts[1] as string, digest]
  }
  if (parts.length !== 1 || prefix.length === 0) c.fail('bad d-ng prefix')
  return ['', prefix, digest]
}

/** Reads `u32 len ‖ bytes` inside template data. */
function field(c: Cursor, data: Cursor): Uint8Array {
  const n = data.u32()
  if (n > data.b.length - data.pos) c.fail('template field length out of bounds')
  return data.bytes(n)
}

/**
 * Parses a binary measurement list into entries (eagerly; binary lists are only used by tools and
 * tests, the verifier receives ASCII).
 *
 * @throws {ImaError} `ERR_IMA_BINARY_FORMAT` (with the 1-based entry number), `ERR_IMA_LIMIT`.
 */
export function parseBinaryList(bytes: Uint8Array, opts: BinaryListOptions = {}): ImaEntry[] {
  const hashSize = HASH_SIZE[opts.templateHashAlg ?? 'sha1']
  const max = opts.maxEntries ?? 10_000_000
  const c = new Cursor(bytes)
  const out: ImaEntry[] = []
  while (c.pos < bytes.length) {
    c.entry++
    if (c.entry > max) throw new ImaError('ERR_IMA_LIMIT', 'too many entries')
    const pcr = c.u32()
    const templateHash = Buffer.from(c.bytes(hashSize)).toString('hex')
    const tnLen = c.u32()
    if (tnLen === 0 || tnLen > 255) c.fail('bad template name length')
    const tname = decoder.decode(c.bytes(tnLen))
    if (!isImaTemplate(tname))
      throw new ImaError('ERR_IMA_UNKNOWN_TEMPLATE', 'unsupported template', { line: c.entry })
    let templateData: Uint8Array
    let digestAlg: string
    let digestType = ''
    let digest: Uint8Array
    let name: string
    let sig: Uint8Array | null = null
    let buf: Uint8Array | null = null
    if (tname === 'ima') {
      digest = c.bytes(20)
      const nl = c.u32()
      if (nl > 255) c.fail('ima template name longer than 255 bytes')
      const nb = c.bytes(nl)
      templateData = new Uint8Array(20 + 256)
      templateData.set(digest)
      templateData.set(nb, 20)
      digestAlg = 'sha1'
      name = decoder.decode(nb)
    } else {
      const dl = c.u32()
      if (dl > bytes.length - c.pos) c.fail('template data length out of bounds')
      templateData = c.bytes(dl).slice()
      const d = new Cursor(templateData)
      d.entry = c.entry
      const v2 = tname === 'ima-ngv2' || tname === 'ima-sigv2'
      ;[digestType, digestAlg, digest] = splitDigestNg(d, field(d, d), v2)
      const nn = field(d, d)
      if (nn.length === 0 || nn[nn.length - 1] !== 0) d.fail('n-ng name is not NUL-terminated')
      if (nn.length > MAX_NAME_BYTES)
        throw new ImaError('ERR_IMA_LIMIT', 'name too long', { line: c.entry })
      name = decoder.decode(nn.subarray(0, nn.length - 1))
      if (tname === 'ima-sig' || tname === 'ima-sigv2' || tname === 'ima-modsig') {
        const s = field(d, d)
        // as the ASCII parser: a badly framed signature is no signature (the entry stays)
        sig = s.length > 0 && hasSigHeaderFraming(s) ? s.slice() : null
      }
      if (tname === 'ima-buf') {
        const s = field(d, d)
        buf = s.length === 0 ? null : s.slice()
      }
      if (tname === 'ima-modsig') {
        const dm = field(d, d)
        if (dm.length > 0) splitDigestNg(d, dm, false)
        field(d, d)
      }
      if (d.pos !== templateData.length) d.fail('trailing bytes in template data')
    }
    out.push({
      line: c.entry,
      pcr,
      templateHash,
      template: tname,
      digestAlg,
      digestType,
      digest: Buffer.from(digest).toString('hex'),
      name,
      sig,
      buf,
      templateData,
    })
  }
  return out
}

/** Renders an entry as the kernel's ASCII line (without newline). */
export function entryToAsciiLine(e: ImaEntry): string {
  const hex = (b: Uint8Array | null): string => (b === null ? '' : Buffer.from(b).toString('hex'))
  const d =
    e.template === 'ima'
      ? e.digest
      : e.digestType !== ''
        ? `${e.digestType}:${e.digestAlg}:${e.digest}`
        : `${e.digestAlg}:${e.digest}`
  const head = `${e.pcr} ${e.templateHash} ${e.template} ${d} ${e.name}`
  switch (e.template) {
    case 'ima':
    case 'ima-ng':
    case 'ima-ngv2':
      return head
    case 'ima-sig':
    case 'ima-sigv2':
      return `${head} ${hex(e.sig)}`
    case 'ima-buf':
      return `${head} ${hex(e.buf)}`
    case 'ima-modsig':
      return `${head} ${hex(e.sig)} ${modsigTail(e.templateData)}`
  }
}

function modsigTail(td: Uint8Array): string {
  // walk d-ng, n-ng, sig to reach d-modsig and modsig
  const dv = new DataView(td.buffer, td.byteOffset, td.byteLength)
  let p = 0
  for (let i = 0; i < 3; i++) p += 4 + dv.getUint32(p, true)
  const dl = dv.getUint32(p, true)
  const dm = td.subarray(p + 4, p + 4 + dl)
  p += 4 + dl
  const ml = dv.getUint32(p, true)
  const ms = td.subarray(p + 4, p + 4 + ml)
  let dtext = ''
  if (dm.length > 0) {
    const nul = dm.indexOf(0)
    dtext = `${decoder.decode(dm.subarray(0, nul))}${Buffer.from(dm.subarray(nul + 1)).toString('hex')}`
  }
  return `${dtext} ${Buffer.from(ms).toString('hex')}`
}

/** Converts a binary list to ASCII list text (one line per entry, each ending in `\n`). */
export function binaryListToAscii(bytes: Uint8Array, opts: BinaryListOptions = {}): string {
  return parseBinaryList(bytes, opts)
    .map((e) => `${entryToAsciiLine(e)}\n`)
    .join('')
}
