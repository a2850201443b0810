/**
 * A synthetic IMA measurement list (wire-formats §7.1) shared by all agents of a fleet: one
 * `boot_aggregate` line and `count - 1` `ima-ng` file entries, with genuine template hashes, so a
 * verifier that replays the list onto the quoted PCR10 gets a match. Column 2 is the SHA-1
 * template hash (the legacy `ascii_runtime_measurements` file); PCR10 of each bank is extended with
 * that bank's hash of the same template data, as the kernel does.
 *
 * Template data of `ima-ng` (all lengths u32 little-endian):
 * `len ‖ "<alg>:" ‖ 00 ‖ digest` then `len ‖ name ‖ 00`.
 *
 * @module
 */

import { createHash } from 'node:crypto'
import { HASH_SIZE, type HashAlg } from '../../../src/tpm/constants.ts'

/** The IMA PCR. */
export const IMA_PCR = 10

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}

/** Template data of an `ima-ng` entry with a sha256 file digest. */
function imaNgTemplate(digest: Buffer, name: string): Buffer {
  const d = Buffer.concat([Buffer.from('sha256:\0', 'latin1'), digest])
  const n = Buffer.concat([Buffer.from(name, 'utf8'), Buffer.from([0])])
  return Buffer.concat([u32le(d.byteLength), d, u32le(n.byteLength), n])
}

/** A synthetic measurement list and the PCR10 values it produces. */
export class ImaLog {
  /** The lines, each ending in `\n`. */
  readonly lines: readonly string[]
  /** The whole list as one string. */
  readonly text: string
  readonly #offsets: number[]
  readonly #digests = new Map<string, string>()
  readonly #pcr10 = new Map<HashAlg, Uint8Array>()
  readonly #templates: Buffer[]
  /** PCR10 after the first n entries, per bank, computed on demand ({@link pcr10After}). */
  readonly #prefix = new Map<HashAlg, Uint8Array[]>()

  /**
   * Builds `count` entries (≥ 1: the first is `boot_aggregate` over the all-zero PCRs 0–9) and
   * replays them for each bank.
   */
  constructor(count: number, banks: readonly HashAlg[]) {
    const n = Math.max(1, Math.floor(count))
    const lines: string[] = []
    const templates: Buffer[] = []
    const bootAggregate = createHash('sha256')
      .update(Buffer.alloc(32 * 10))
      .digest()
    for (let i = 0; i < n; i++) {
      const name = i === 0 ? 'boot_aggregate' : `/usr/lib/fleet/file-${i}`
      const digest =
        i === 0 ? bootAggregate : createHash('sha256').update(`fleet file ${i}`).digest()
      const t = imaNgTemplate(digest, name)
      templates.push(t)
      this.#digests.set(name, digest.toString('hex'))
      const th = createHash('sha1').update(t).digest('hex')
      lines.push(`${IMA_PCR} ${th} ima-ng sha256:${digest.toString('hex')} ${name}\n`)
    }
    this.lines = lines
    this.#templates = templates
    this.text = lines.join('')
    this.#offsets = []
    let off = 0
    for (const l of lines) {
      this.#offsets.push(off)
      off += l.length
    }
    for (const bank of new Set(banks)) {
      let pcr: Uint8Array = new Uint8Array(HASH_SIZE[bank])
      for (const t of templates) {
        pcr = createHash(bank).update(pcr).update(createHash(bank).update(t).digest()).digest()
      }
      this.#pcr10.set(bank, pcr)
    }
  }

  /**
   * A runtime policy (keylime-api.md §5.2, version 1) that allows exactly this list, with
   * `log_hash_alg` sha1 (column 2 of the list); enrol with it base64-encoded.
   */
  runtimePolicy(): string {
    const digests: Record<string, string[]> = {}
    for (const [name, hex] of this.#digests) digests[name] = [hex]
    return JSON.stringify({
      // generator 3 (LegacyAllowList) as `keylime-policy create runtime` writes: with 0 (Unknown)
      // the verifier treats the policy as none and never asks for the IMA list
      meta: { version: 1, generator: 3 },
      release: 0,
      digests,
      excludes: [],
      keyrings: {},
      ima: { ignored_keyrings: [], log_hash_alg: 'sha1', dm_policy: null },
      'ima-buf': {},
      'verification-keys': '',
    })
  }

  /** PCR10 after the whole list, for `bank` (undefined if the bank was not replayed). */
  pcr10(bank: HashAlg): Uint8Array | undefined {
    return this.#pcr10.get(bank)
  }

  /**
   * PCR10 of `bank` after the first `n` entries (a list that grows round by round: the push
   * fleet's agents); computed once per bank, then looked up.
   */
  pcr10After(n: number, bank: HashAlg): Uint8Array {
    let values = this.#prefix.get(bank)
    if (values === undefined) {
      let pcr: Uint8Array = new Uint8Array(HASH_SIZE[bank])
      values = [pcr]
      for (const t of this.#templates) {
        pcr = createHash(bank).update(pcr).update(createHash(bank).update(t).digest()).digest()
        values.push(pcr)
      }
      this.#prefix.set(bank, values)
    }
    return values[Math.max(0, Math.min(n, values.length - 1))]!
  }

  /** Byte offset of entry `n` in {@link text} (its length for n ≥ the entry count). */
  offsetOf(n: number): number {
    return n >= this.#offsets.length ? this.text.length : (this.#offsets[Math.max(0, n)] ?? 0)
  }

  /**
   * The list from entry `entry` on, as rust-keylime sends it: if `entry` is past the end the
   * agent restarts at 0 (and reports 0); `entry` == length gives an empty string.
   */
  fromEntry(entry: number): { text: string; entry: number } {
    if (!Number.isSafeInteger(entry) || entry < 0 || entry > this.lines.length) {
      return { text: this.text, entry: 0 }
    }
    if (entry === this.lines.length) return { text: '', entry }
    return { text: this.text.slice(this.#offsets[entry]), entry }
  }
}
