/**
 * A growable big-endian (or little-endian) byte builder for TPM wire data, the write-side twin of
 * {@link ByteReader}. Values are range-checked: a number that does not fit its field throws
 * `ERR_TPM_BAD_VALUE` instead of being silently truncated.
 *
 * @module
 */

import { TpmError } from './errors.ts'

/** Options for {@link ByteWriter}. */
export interface ByteWriterOptions {
  /** Write multi-byte integers little-endian (default: big-endian). */
  littleEndian?: boolean
  /** Initial capacity in bytes (default 256). */
  capacity?: number
}

/**
 * Builds a byte array field by field.
 *
 * @example
 * ```ts
 * const w = new ByteWriter()
 * w.u16(0x0001).u16(0x000b).tpm2b(new Uint8Array(0))
 * const bytes = w.finish()
 * ```
 */
export class ByteWriter {
  #buf: Uint8Array
  #view: DataView
  #pos = 0
  readonly #le: boolean

  constructor(opts: ByteWriterOptions = {}) {
    this.#le = opts.littleEndian === true
    this.#buf = new Uint8Array(Math.max(16, opts.capacity ?? 256))
    this.#view = new DataView(this.#buf.buffer)
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#pos
  }

  #grow(n: number): void {
    const need = this.#pos + n
    if (need <= this.#buf.byteLength) return
    let cap = this.#buf.byteLength * 2
    while (cap < need) cap *= 2
    const next = new Uint8Array(cap)
    next.set(this.#buf.subarray(0, this.#pos))
    this.#buf = next
    this.#view = new DataView(next.buffer)
  }

  static #check(v: number, max: number, what: string): void {
    if (!Number.isInteger(v) || v < 0 || v > max) {
      throw new TpmError('ERR_TPM_BAD_VALUE', `${what} out of range`)
    }
  }

  /** Writes one byte. */
  u8(v: number): this {
    ByteWriter.#check(v, 0xff, 'u8')
    this.#grow(1)
    this.#view.setUint8(this.#pos, v)
    this.#pos += 1
    return this
  }

  /** Writes a 16-bit unsigned integer. */
  u16(v: number): this {
    ByteWriter.#check(v, 0xffff, 'u16')
    this.#grow(2)
    this.#view.setUint16(this.#pos, v, this.#le)
    this.#pos += 2
    return this
  }

  /** Writes a 32-bit unsigned integer. */
  u32(v: number): this {
    ByteWriter.#check(v, 0xffffffff, 'u32')
    this.#grow(4)
    this.#view.setUint32(this.#pos, v, this.#le)
    this.#pos += 4
    return this
  }

  /** Writes a 64-bit unsigned integer. */
  u64(v: bigint | number): this {
    const b = typeof v === 'bigint' ? v : BigInt(v)
    if (b < 0n || b > 0xffffffffffffffffn)
      throw new TpmError('ERR_TPM_BAD_VALUE', 'u64 out of range')
    this.#grow(8)
    this.#view.setBigUint64(this.#pos, b, this.#le)
    this.#pos += 8
    return this
  }

  /** Appends raw bytes. */
  bytes(b: Uint8Array): this {
    this.#grow(b.byteLength)
    this.#buf.set(b, this.#pos)
    this.#pos += b.byteLength
    return this
  }

  /** Appends `n` zero bytes. */
  zeros(n: number): this {
    ByteWriter.#check(n, 0x7fffffff, 'zero count')
    this.#grow(n)
    this.#buf.fill(0, this.#pos, this.#pos + n)
    this.#pos += n
    return this
  }

  /** Writes a TPM2B: u16 size then the bytes (`ERR_TPM_BAD_VALUE` if longer than 65535). */
  tpm2b(b: Uint8Array): this {
    this.u16(b.byteLength)
    return this.bytes(b)
  }

  /** Returns the written bytes (a fresh, exactly-sized array). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#pos)
  }
}
