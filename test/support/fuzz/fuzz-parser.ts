/**
 * A small, reusable, seeded fuzz harness for binary parsers.
 *
 * {@link fuzzParser} takes seed inputs (real fixtures), applies 1–3 stacked mutations per case —
 * bit flips, interesting-byte writes, truncation, extension, big/little-endian u16/u32 length-field
 * tampering, chunk insertion/deletion/duplication, splicing two seeds, pure random bytes — and
 * calls `parse` on each. Every case must either return or throw an error accepted by
 * `isTypedError`; anything else (a TypeError, RangeError, a non-error throw, or a case slower than
 * `slowMs`) is recorded as a failure with the case's seed so it reproduces:
 * `mutate(seeds, caseSeed(seed, i))` rebuilds the exact input.
 *
 * @module
 */

import { KeylimeError } from '../../../src/errors.ts'

/** Options of {@link fuzzParser}. */
export interface FuzzOptions {
  /** Number of cases (default 5000). */
  cases?: number
  /** Run seed (default 1); the same seed gives the same inputs. */
  seed?: number
  /** Accepts the expected, typed errors (default: any KeylimeError). */
  isTypedError?: (e: unknown) => boolean
  /** A single case slower than this is a failure (default 2000 ms: far above any real case, low
   *  enough to catch a hang or a blow-up; tight bounds flake on a loaded CI machine). */
  slowMs?: number
  /** Keep at most this many failures (default 20). */
  maxFailures?: number
}

/** One failing case, reproducible from `caseSeed`. */
export interface FuzzFailure {
  /** Case index. */
  index: number
  /** Seed that regenerates the input with {@link mutate}. */
  caseSeed: number
  /** The input, hex (first 512 bytes). */
  inputHex: string
  /** What went wrong. */
  problem: string
}

/** Outcome counts of a fuzz run. */
export interface FuzzReport {
  /** Parser name. */
  name: string
  /** Cases run. */
  cases: number
  /** Cases where parse returned a value. */
  accepted: number
  /** Cases where parse threw an accepted typed error. */
  rejected: number
  /** Rejections by error code. */
  byCode: Record<string, number>
  /** Slowest case in milliseconds. */
  maxMs: number
  /** Untyped errors and slow cases. */
  failures: FuzzFailure[]
}

/** A tiny deterministic PRNG (mulberry32). */
export class Prng {
  #s: number
  constructor(seed: number) {
    this.#s = seed >>> 0
  }
  /** Next uint32. */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0
    let t = this.#s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n
  }
  /** Random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff
    return out
  }
  /** One element of a non-empty array. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T
  }
}

/** Derives the seed of case `index` of a run seeded with `runSeed`. */
export function caseSeed(runSeed: number, index: number): number {
  return (Math.imul(runSeed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(index + 1, 0xc2b2ae35)) >>> 0
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]

function lengthValue(p: Prng, len: number, max: number): number {
  const opts = [0, 1, len, len - 1, len + 1, max, max - 1, p.int(max + 1), p.int(len + 8)]
  return Math.max(0, Math.min(max, p.pick(opts)))
}

type Mutation = (p: Prng, b: Uint8Array, seeds: readonly Uint8Array[]) => Uint8Array

/** A copy of `b` (of a range of it): a Buffer's `slice` is a view, and a seed must never change. */
const copyOf = (b: Uint8Array, start = 0, end = b.length): Uint8Array =>
  Uint8Array.prototype.slice.call(b, start, end)

const MUTATIONS: readonly Mutation[] = [
  // flip 1-8 bits
  (p, b) => {
    const out = copyOf(b)
    if (out.length === 0) return out
    const n = 1 + p.int(8)
    for (let i = 0; i < n; i++) {
      const at = p.int(out.length)
      out[at] = (out[at] ?? 0) ^ (1 << p.int(8))
    }
    return out
  },
  // interesting byte
  (p, b) => {
    const out = copyOf(b)
    if (out.length > 0) out[p.int(out.length)] = p.pick(INTERESTING)
    return out
  },
  // truncate
  (p, b) => copyOf(b, 0, p.int(b.length + 1)),
  // extend
  (p, b) => {
    const extra = p.bytes(1 + p.int(32))
    const out = new Uint8Array(b.length + extra.length)
    out.set(b)
    out.set(extra, b.length)
    return out
  },
  // u16 BE/LE length tamper
  (p, b) => {
    const out = copyOf(b)
    if (out.length < 2) return out
    const at = p.int(out.length - 1)
    const v = lengthValue(p, out.length - at, 0xffff)
    const dv = new DataView(out.buffer)
    dv.setUint16(at, v, p.int(2) === 0)
    return out
  },
  // u32 BE/LE length tamper
  (p, b) => {
    const out = copyOf(b)
    if (out.length < 4) return out
    const at = p.int(out.length - 3)
    const v = p.int(4) === 0 ? 0xffffffff : lengthValue(p, out.length - at, 0xffffffff)
    new DataView(out.buffer).setUint32(at, v >>> 0, p.int(2) === 0)
    return out
  },
  // delete a chunk
  (p, b) => {
    if (b.length === 0) return copyOf(b)
    const at = p.int(b.length)
    const n = 1 + p.int(Math.min(64, b.length - at))
    const out = new Uint8Array(b.length - n)
    out.set(b.subarray(0, at))
    out.set(b.subarray(at + n), at)
    return out
  },
  // insert random chunk
  (p, b) => {
    const at = p.int(b.length + 1)
    const ins = p.bytes(1 + p.int(16))
    const out = new Uint8Array(b.length + ins.length)
    out.set(b.subarray(0, at))
    out.set(ins, at)
    out.set(b.subarray(at), at + ins.length)
    return out
  },
  // duplicate a chunk
  (p, b) => {
    if (b.length === 0) return copyOf(b)
    const at = p.int(b.length)
    const chunk = b.subarray(at, at + 1 + p.int(32))
    const out = new Uint8Array(b.length + chunk.length)
    out.set(b.subarray(0, at + chunk.length))
    out.set(chunk, at + chunk.length)
    out.set(b.subarray(at + chunk.length), at + 2 * chunk.length)
    return out
  },
  // splice with another seed
  (p, b, seeds) => {
    const other = p.pick(seeds)
    const a = p.int(b.length + 1)
    const c = p.int(other.length + 1)
    const out = new Uint8Array(a + other.length - c)
    out.set(b.subarray(0, a))
    out.set(other.subarray(c), a)
    return out
  },
  // pure random
  (p, b) => p.bytes(p.int(Math.max(8, b.length * 2))),
]

/** Builds the mutated input of one case (deterministic in `seed`). */
export function mutate(seeds: readonly Uint8Array[], seed: number): Uint8Array {
  if (seeds.length === 0) throw new Error('fuzz: no seeds')
  const p = new Prng(seed)
  let b = p.pick(seeds)
  const rounds = 1 + p.int(3)
  for (let i = 0; i < rounds; i++) b = p.pick(MUTATIONS)(p, b, seeds)
  return b
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.subarray(0, 512)).toString('hex')
}

/**
 * Runs `cases` mutated inputs through `parse`, counting outcomes.
 *
 * @example
 * ```ts
 * const report = fuzzParser('attest', [fixtureAttest], parseTpmsAttest, { cases: 5000, isTypedError: isTpmError })
 * expect(report.failures).toEqual([])
 * ```
 */
export function fuzzParser<T>(
  name: string,
  seeds: readonly Uint8Array[],
  parse: (input: Uint8Array) => T,
  opts: FuzzOptions = {},
): FuzzReport {
  const cases = opts.cases ?? 5000
  const runSeed = opts.seed ?? 1
  const isTyped = opts.isTypedError ?? ((e: unknown) => e instanceof KeylimeError)
  const slowMs = opts.slowMs ?? 2000
  const maxFailures = opts.maxFailures ?? 20
  const report: FuzzReport = {
    name,
    cases,
    accepted: 0,
    rejected: 0,
    byCode: {},
    maxMs: 0,
    failures: [],
  }
  const fail = (index: number, s: number, input: Uint8Array, problem: string): void => {
    if (report.failures.length < maxFailures) {
      report.failures.push({ index, caseSeed: s, inputHex: hex(input), problem })
    }
  }
  for (let i = 0; i < cases; i++) {
    const s = caseSeed(runSeed, i)
    const input = mutate(seeds, s)
    const t0 = performance.now()
    try {
      parse(input)
      report.accepted++
    } catch (e) {
      if (isTyped(e)) {
        report.rejected++
        const code = (e as { code?: unknown }).code
        const key = typeof code === 'string' ? code : 'typed'
        report.byCode[key] = (report.byCode[key] ?? 0) + 1
      } else {
        fail(
          i,
          s,
          input,
          `untyped error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
        )
      }
    }
    const ms = performance.now() - t0
    if (ms > report.maxMs) report.maxMs = ms
    if (ms > slowMs) fail(i, s, input, `slow case: ${ms.toFixed(1)} ms`)
  }
  return report
}
