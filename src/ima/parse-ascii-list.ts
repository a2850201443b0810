/**
 * Lazy walk over an ASCII measurement list: lines are found with `indexOf('\n')` and parsed one
 * at a time, so a 100,000-entry list never becomes an array of lines or entries.
 *
 * @module
 */

import { AsciiEntryParser } from './ascii-entry-parser.ts'
import type { ImaEntry } from './ima-entry.ts'

/**
 * Calls `fn(line, lineNo)` for every non-empty line of `text` (1-based numbers count all lines,
 * empty ones included, like upstream's `enumerate`). A trailing `\r` is kept: the kernel never
 * writes one, and dropping it silently would hide a transport change.
 */
export function forEachLine(text: string, fn: (line: string, lineNo: number) => void): void {
  let pos = 0
  let lineNo = 0
  const n = text.length
  while (pos < n) {
    let nl = text.indexOf('\n', pos)
    if (nl < 0) nl = n
    lineNo++
    if (nl > pos) fn(text.slice(pos, nl), lineNo)
    pos = nl + 1
  }
}

/**
 * Yields the parsed entries of an ASCII list, one at a time. Each entry's `templateData` is a
 * fresh copy (safe to keep), unlike the streaming {@link AsciiEntryParser}.
 *
 * @throws {ImaError} on the first malformed line (the error carries the line number).
 */
export function* parseAsciiList(text: string): Generator<ImaEntry> {
  const parser = new AsciiEntryParser()
  let pos = 0
  let lineNo = 0
  const n = text.length
  while (pos < n) {
    let nl = text.indexOf('\n', pos)
    if (nl < 0) nl = n
    lineNo++
    if (nl > pos) {
      const e = parser.parse(text.slice(pos, nl), lineNo)
      yield { ...e, templateData: e.templateData.slice() }
    }
    pos = nl + 1
  }
}
