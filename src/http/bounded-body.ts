/**
 * Collects one peer answer under a size cap and a shared {@link ByteBudget}, in linear time:
 * pieces are kept in a list and joined once, never concatenated per chunk.
 *
 * Both agent clients use it: the HTTP/1 reader of the verifier's agent pool counts every byte it
 * consumes (head, chunk framing, body), the fetch-based HTTPS client counts the body stream. The
 * first {@link BUDGET_FREE_BYTES} of an answer are not taken from the budget, so the few-KB answers
 * of ordinary rounds never fail while large answers (hostile or not) hold the budget.
 *
 * @module
 */
import { KeylimeError } from '../errors.ts'
import type { ByteBudget } from './byte-budget.ts'

/** Bytes of every answer not charged to the budget (a quote with a few hundred IMA entries). */
export const BUDGET_FREE_BYTES = 64 * 1024

/**
 * Default cap of one answer (`[verifier] max_agent_response_size`): 256 MiB. A full IMA log of a
 * busy server (the first answer after enrolment or a reboot carries every entry) at ~200 bytes a
 * JSON-escaped `ima-ng` line is ~1.3 million entries; upstream's tornado client stops at 100 MiB.
 */
export const DEFAULT_MAX_ANSWER_BYTES = 256 * 1024 * 1024

/** Limits of one answer. */
export interface BodyLimits {
  /** Most bytes of the answer. */
  maxBytes: number
  /** Process-wide budget the answer's bytes beyond {@link BUDGET_FREE_BYTES} are taken from. */
  budget?: ByteBudget
}

/** Which limit an answer hit. */
export type BodyLimitCode = 'ERR_ANSWER_TOO_LARGE' | 'ERR_ANSWER_BUDGET_EXHAUSTED'

/** An answer passed its cap, or the process budget had no room for it. */
export class BodyLimitError extends KeylimeError {
  declare readonly code: BodyLimitCode
  /** The cap or budget that was hit (bytes). */
  readonly limit: number

  constructor(code: BodyLimitCode, message: string, limit: number) {
    super(code, message, { status: 502 })
    this.name = 'BodyLimitError'
    this.limit = limit
  }
}

/** Pieces smaller than this are copied into a shared block, so tiny chunks cost no list entry. */
const SMALL_PIECE = 4096
const BLOCK_SIZE = 64 * 1024

/** One answer's bytes: counted against the limits, kept, joined once. */
export class BoundedBody {
  readonly #limits: BodyLimits
  #received = 0
  #charged = 0
  #parts: Uint8Array[] = []
  #kept = 0
  /** Block small pieces are copied into; `[#blockStart, #blockEnd)` is not yet in `#parts`. */
  #block: Buffer | undefined
  #blockStart = 0
  #blockEnd = 0

  constructor(limits: BodyLimits) {
    this.#limits = limits
  }

  /** Bytes counted so far. */
  get received(): number {
    return this.#received
  }

  /**
   * Fails early when `n` more bytes (a declared length) would pass the cap.
   *
   * @throws BodyLimitError `ERR_ANSWER_TOO_LARGE`
   */
  expect(n: number): void {
    if (this.#received + n > this.#limits.maxBytes) this.#tooLarge(this.#received + n)
  }

  /**
   * Counts `n` received bytes against the cap and the budget.
   *
   * @throws BodyLimitError `ERR_ANSWER_TOO_LARGE` or `ERR_ANSWER_BUDGET_EXHAUSTED`
   */
  count(n: number): void {
    const total = this.#received + n
    if (total > this.#limits.maxBytes) this.#tooLarge(total)
    this.#received = total
    const budget = this.#limits.budget
    const due = total - BUDGET_FREE_BYTES - this.#charged
    if (budget === undefined || due <= 0) return
    if (!budget.take(due)) {
      throw new BodyLimitError(
        'ERR_ANSWER_BUDGET_EXHAUSTED',
        `answers being read hold ${budget.used} of ${budget.limit} bytes`,
        budget.limit,
      )
    }
    this.#charged += due
  }

  /**
   * Keeps `src[start, end)`. Small ranges are copied; large ones are kept as views, so `src` must
   * not change afterwards.
   */
  keep(src: Buffer, start = 0, end = src.byteLength): void {
    const n = end - start
    if (n <= 0) return
    this.#kept += n
    if (n >= SMALL_PIECE) {
      this.#sealBlock()
      this.#parts.push(src.subarray(start, end))
      return
    }
    let block = this.#block
    if (block === undefined || this.#blockEnd + n > block.byteLength) {
      this.#sealBlock()
      block = Buffer.allocUnsafe(BLOCK_SIZE)
      this.#block = block
      this.#blockStart = 0
      this.#blockEnd = 0
    }
    if (n > 16) src.copy(block, this.#blockEnd, start, end)
    else for (let i = start, j = this.#blockEnd; i < end; i++, j++) block[j] = src[i] as number
    this.#blockEnd += n
  }

  /** The kept bytes as one buffer (one copy at most); the pieces are dropped. */
  join(): Buffer {
    this.#sealBlock()
    const parts = this.#parts
    this.#parts = []
    this.#block = undefined
    const only = parts[0]
    if (parts.length === 1 && only !== undefined) {
      return Buffer.from(only.buffer, only.byteOffset, only.byteLength)
    }
    return Buffer.concat(parts, this.#kept)
  }

  /** Gives the budget back and drops the pieces (idempotent). */
  release(): void {
    this.#limits.budget?.give(this.#charged)
    this.#charged = 0
    this.#parts = []
    this.#block = undefined
  }

  /** Moves the block's pending bytes to the parts; the rest of the block stays in use. */
  #sealBlock(): void {
    if (this.#block === undefined || this.#blockEnd === this.#blockStart) return
    this.#parts.push(this.#block.subarray(this.#blockStart, this.#blockEnd))
    this.#blockStart = this.#blockEnd
  }

  #tooLarge(total: number): never {
    const max = this.#limits.maxBytes
    throw new BodyLimitError(
      'ERR_ANSWER_TOO_LARGE',
      `answer of at least ${total} bytes exceeds the limit of ${max}`,
      max,
    )
  }
}
