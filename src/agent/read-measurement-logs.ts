/**
 * The node's event logs for quotes (wire-formats §1.3, §7): the IMA ASCII list, read
 * incrementally (only bytes past the last complete line are read again, as securityfs allows
 * reading at an offset), and the UEFI log, re-read whole on each request like rust-keylime.
 *
 * @module
 */

import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs'
import type { MeasurementList } from './api/agent-api.ts'

/** The IMA ASCII measurement list at `path`. */
export class ImaListFile implements MeasurementList {
  readonly #path: string
  #text = ''
  #bytes = 0
  #lineStarts: number[] = []

  constructor(path: string) {
    this.#path = path
  }

  /** Reads new complete lines. */
  #refresh(): boolean {
    let fd: number
    try {
      fd = openSync(this.#path, 'r')
    } catch {
      return false
    }
    try {
      const chunks: Buffer[] = []
      const buf = Buffer.alloc(64 * 1024)
      let pos = this.#bytes
      for (;;) {
        const n = readSync(fd, buf, 0, buf.byteLength, pos)
        if (n <= 0) break
        chunks.push(Buffer.from(buf.subarray(0, n)))
        pos += n
      }
      const added = Buffer.concat(chunks)
      const lastNl = added.lastIndexOf(0x0a)
      if (lastNl < 0) return true
      const complete = added.subarray(0, lastNl + 1)
      const text = complete.toString('utf8')
      let at = this.#text.length
      for (const line of text.split('\n').slice(0, -1)) {
        this.#lineStarts.push(at)
        at += line.length + 1
      }
      this.#text += text
      this.#bytes += complete.byteLength
      return true
    } finally {
      closeSync(fd)
    }
  }

  /** The number of complete entries, or undefined when there is no list (push capabilities). */
  entryCount(): number | undefined {
    return this.#refresh() ? this.#lineStarts.length : undefined
  }

  /**
   * Entries from `offset` (0-based; past the end gives none) to the end, as text and count
   * (push evidence: the verifier's `starting_offset`); undefined when there is no list.
   */
  entriesFrom(offset: number): { text: string; count: number } | undefined {
    if (!this.#refresh()) return undefined
    const from = Math.min(Math.max(0, offset), this.#lineStarts.length)
    const start = this.#lineStarts[from] ?? this.#text.length
    return { text: this.#text.slice(start), count: this.#lineStarts.length - from }
  }

  fromEntry(entry: number): { text: string; entry: number } | undefined {
    if (!this.#refresh()) return undefined
    const e = entry < this.#lineStarts.length ? entry : 0
    const start = this.#lineStarts[e] ?? this.#text.length
    return { text: this.#text.slice(start), entry: e }
  }
}

/** A reader of the UEFI event log at `path` (undefined when absent or unreadable). */
export function uefiLogReader(path: string): () => Uint8Array | undefined {
  return () => {
    if (!existsSync(path)) return undefined
    try {
      return readFileSync(path)
    } catch {
      return undefined
    }
  }
}

/** Boot time in seconds since the epoch (`btime` of /proc/stat), or undefined. */
export function readBootTime(): number | undefined {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))
    return m === null ? undefined : Number(m[1])
  } catch {
    return undefined
  }
}
