/**
 * A bounds-checked cursor over TPM wire data (STYLE.md rule 5).
 *
 * TPM structures are big-endian (TCG TPM 2.0 Library Part 1, "Byte ordering": canonical form); the tpm2-tools
 * serialized PCR file is a little-endian memory dump, so endianness is a constructor option.
 * Every read checks the remaining length first and throws `ERR_TPM_TRUNCATED`; nothing is
 * allocated from an unchecked length. Sub-arrays are views (no copies) into the input.
 *
 * @module
 */

import { TpmError } from './errors.ts'

/** Options for {@link ByteReader}. */
export interface ByteReaderOptions {
  /** Read multi-byte integers little-endian (default: big-endian, the TPM canonical form). */
  littleEndian?: boolean
}

/**
 * A cursor over a byte array with bounds-checked reads.
 *
 * @example
 * ```ts
 * const r = new ByteReader(bytes)
 * const magic = r.u32()
 * const name = r.tpm2b()
 * r.end() // throws ERR_TPM_TRAILING_BYTES if anything is left
 * ```
 */
export class ByteReader {
  /** The input being read. */
  readonly source: Uint8Array
  readonly #view: DataView
  readonly #le: boolean
  #pos = 0

  constructor(bytes: Uint8Array, opts: ByteReaderOptions = {}) {
    this.source = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.#le = opts.littleEndian === true
  }

  /** The current read position. */
  get offset(): number {
    return this.#pos
  }

  /** Bytes left after the cursor. */
  get remaining(): number {
    return this.source.byteLength - this.#pos
  }

  /** Throws `ERR_TPM_TRUNCATED` unless `n` more bytes are available. */
  need(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.remaining) {
      throw new TpmError(
        'ERR_TPM_TRUNCATED',
        `need ${n} bytes at offset ${this.#pos}, have ${this.remaining}`,
      )
    }
  }

  /** Reads one byte. */
  u8(): number {
    this.need(1)
    return this.#view.getUint8(this.#pos++)
  }

  /** Reads a 16-bit unsigned integer. */
  u16(): number {
    this.need(2)
    const v = this.#view.getUint16(this.#pos, this.#le)
    this.#pos += 2
    return v
  }

  /** Reads a 32-bit unsigned integer. */
  u32(): number {
    this.need(4)
    const v = this.#view.getUint32(this.#pos, this.#le)
    this.#pos += 4
    return v
  }

  /** Reads a 64-bit unsigned integer. */
  u64(): bigint {
    this.need(8)
    const v = this.#view.getBigUint64(this.#pos, this.#le)
    this.#pos += 8
    return v
  }

  /** Returns a view of the next `n` bytes (no copy) and advances. */
  bytes(n: number): Uint8Array {
    this.need(n)
    const v = this.source.subarray(this.#pos, this.#pos + n)
    this.#pos += n
    return v
  }

  /** Whether the next `n` bytes are all zero (no view is made); advances past them. */
  zeros(n: number): boolean {
    this.need(n)
    const b = this.source
    let acc = 0
    for (let i = this.#pos, end = this.#pos + n; i < end; i++) acc |= b[i] as number
    this.#pos += n
    return acc === 0
  }

  /** Reads a TPM2B: a u16 size followed by that many bytes (a view, no copy). */
  tpm2b(): Uint8Array {
    const size = this.u16()
    return this.bytes(size)
  }

  /** Skips `n` bytes. */
  skip(n: number): void {
    this.need(n)
    this.#pos += n
  }

  /** Returns the unread rest (a view) without advancing. */
  rest(): Uint8Array {
    return this.source.subarray(this.#pos)
  }

  /** Asserts that every byte was consumed (`ERR_TPM_TRAILING_BYTES` otherwise). */
  end(): void {
    if (this.remaining !== 0) {
      throw new TpmError(
        'ERR_TPM_TRAILING_BYTES',
        `${this.remaining} trailing bytes at offset ${this.#pos}`,
      )
    }
  }
}
