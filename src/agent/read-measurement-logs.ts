/**
 * The node's event logs for quotes (wire-formats §1.3, §7): the IMA ASCII list, read
 * incrementally (only bytes past the last complete line are read again, as securityfs allows
 * reading at an offset), and the UEFI log, re-read whole on each request like rust-keylime.
 *
 * Both files are root-only in securityfs, so {@link openMeasurementLogs} opens them before the
 * agent switches to `run_as` (as rust-keylime's `PrivilegedResources`): the IMA list's
 * descriptor stays open, and the UEFI log read at start is served when a re-read is refused.
 *
 * @module
 */

import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs'
import type { MeasurementList } from './api/agent-api.ts'

/** The IMA ASCII measurement list at `path`. */
export class ImaListFile implements MeasurementList {
  readonly #path: string
  #fd: number | undefined
  #text = ''
  #bytes = 0
  #lineStarts: number[] = []

  constructor(path: string) {
    this.#path = path
  }

  /** Opens the list now and keeps it open (before dropping privileges); false if absent. */
  keepOpen(): boolean {
    if (this.#fd !== undefined) return true
    try {
      this.#fd = openSync(this.#path, 'r')
      return true
    } catch {
      return false
    }
  }

  /** Closes a descriptor kept by {@link keepOpen}. */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd)
    this.#fd = undefined
  }

  /** Reads new complete lines. */
  #refresh(): boolean {
    let fd: number
    try {
      fd = this.#fd ?? openSync(this.#path, 'r')
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
      if (fd !== this.#fd) closeSync(fd)
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

/**
 * A reader of the UEFI event log at `path`: re-read on each call, else the copy read when the
 * reader was made (a log that became unreadable after `run_as`); undefined when never readable.
 */
export function uefiLogReader(path: string): () => Uint8Array | undefined {
  const read = (): Uint8Array | undefined => {
    if (!existsSync(path)) return undefined
    try {
      return readFileSync(path)
    } catch {
      return undefined
    }
  }
  const atStart = read()
  return () => read() ?? atStart
}

/** The IMA list and the UEFI log as the agent serves them. */
export interface MeasurementLogs {
  /** The IMA list. */
  ima: ImaListFile
  /** The UEFI log. */
  uefiLog: () => Uint8Array | undefined
}

/** Opens both logs (call before dropping privileges). */
export function openMeasurementLogs(paths: {
  imaList: string
  measuredBootLog: string
}): MeasurementLogs {
  const ima = new ImaListFile(paths.imaList)
  ima.keepOpen()
  return { ima, uefiLog: uefiLogReader(paths.measuredBootLog) }
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
