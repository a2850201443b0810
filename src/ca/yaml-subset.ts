/**
 * The small YAML subset that upstream Keylime's `private.yml` uses, written the way PyYAML's
 * `SafeDumper` writes it (keys sorted, block style, `!!binary |` for bytes) and read back in the
 * same shape, so a CA directory can move between upstream Keylime and keylime-ts.
 *
 * Supported values: strings, non-negative integers, bytes (`!!binary`), lists of strings and
 * one-level maps of string → string. Anything else is rejected with a typed error; the parser is
 * total (no recursion, bounded input).
 *
 * @module
 */
import { CaError } from './errors.ts'

/** A value this subset can hold. */
export type YamlValue = string | number | Uint8Array | string[] | Record<string, string>

/** A top-level YAML mapping. */
export type YamlDoc = Record<string, YamlValue>

/** Largest document accepted by {@link parseYamlSubset} (16 MiB). */
const MAX_YAML_CHARS = 16 * 1024 * 1024

const RESERVED = new Set(['true', 'false', 'yes', 'no', 'on', 'off', 'null', 'y', 'n'])

function quoteScalar(s: string): string {
  if (/^[A-Za-z][A-Za-z0-9_./+=-]*$/.test(s) && !RESERVED.has(s.toLowerCase())) return s
  if (/[\u0000-\u001f\u007f]/.test(s)) return JSON.stringify(s)
  return `'${s.replaceAll("'", "''")}'`
}

function base64Lines(bytes: Uint8Array): string[] {
  const b64 = Buffer.from(bytes).toString('base64')
  const lines: string[] = []
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76))
  return lines
}

/**
 * Serialises a flat mapping in PyYAML `SafeDumper` style (keys sorted).
 *
 * @example
 * ```ts
 * dumpYamlSubset({ lastserial: 2, revoked_keys: [] }) // 'lastserial: 2\nrevoked_keys: []\n'
 * ```
 */
export function dumpYamlSubset(doc: YamlDoc): string {
  let out = ''
  for (const key of Object.keys(doc).sort()) {
    const value = doc[key]
    const k = quoteScalar(key)
    if (value instanceof Uint8Array) {
      out += `${k}: !!binary |\n`
      for (const line of base64Lines(value)) out += `  ${line}\n`
    } else if (typeof value === 'number') {
      if (!Number.isSafeInteger(value))
        throw new CaError('ERR_CA_INVALID_INPUT', `YAML: ${key} is not an integer`)
      out += `${k}: ${value}\n`
    } else if (typeof value === 'string') {
      out += `${k}: ${quoteScalar(value)}\n`
    } else if (Array.isArray(value)) {
      if (value.length === 0) out += `${k}: []\n`
      else out += `${k}:\n${value.map((v) => `- ${quoteScalar(v)}\n`).join('')}`
    } else if (value !== undefined) {
      const entries = Object.keys(value).sort()
      if (entries.length === 0) out += `${k}: {}\n`
      else
        out += `${k}:\n${entries.map((e) => `  ${quoteScalar(e)}: ${quoteScalar(value[e] ?? '')}\n`).join('')}`
    }
  }
  return out
}

function malformed(lineNo: number, why: string): CaError {
  return new CaError('ERR_CA_MALFORMED', `YAML line ${lineNo}: ${why}`)
}

/** Parses one scalar (plain, 'single' or "double" quoted); numbers stay numbers. */
function parseScalar(raw: string, lineNo: number): string | number {
  const s = raw.trim()
  if (s.startsWith("'")) {
    if (s.length < 2 || !s.endsWith("'")) throw malformed(lineNo, 'unterminated quoted string')
    const inner = s.slice(1, -1)
    if (/(^|[^'])'([^']|$)/.test(inner.replaceAll("''", ''))) throw malformed(lineNo, 'bad quoting')
    return inner.replaceAll("''", "'")
  }
  if (s.startsWith('"')) {
    try {
      const v: unknown = JSON.parse(s)
      if (typeof v === 'string') return v
    } catch {
      // fall through to the error below
    }
    throw malformed(lineNo, 'bad double-quoted string')
  }
  if (/^(0|[1-9][0-9]{0,15})$/.test(s)) return Number(s)
  return s
}

/** Splits `key: rest` at the first `: ` outside quotes. */
function splitKey(line: string, lineNo: number): [string, string] {
  let i = 0
  if (line.startsWith("'")) {
    i = 1
    while (i < line.length) {
      if (line[i] === "'" && line[i + 1] === "'") i += 2
      else if (line[i] === "'") break
      else i++
    }
    i++
  }
  const colon = line.indexOf(':', i)
  if (colon < 0 || (colon + 1 < line.length && line[colon + 1] !== ' '))
    throw malformed(lineNo, 'expected "key: value"')
  const key = parseScalar(line.slice(0, colon), lineNo)
  return [String(key), line.slice(colon + 1).trim()]
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length
}

/**
 * Parses a document produced by {@link dumpYamlSubset} or by PyYAML `safe_dump` of the same shapes.
 *
 * @throws {CaError} `ERR_CA_MALFORMED` on anything outside the subset.
 */
export function parseYamlSubset(text: string): YamlDoc {
  if (text.length > MAX_YAML_CHARS) throw new CaError('ERR_CA_MALFORMED', 'YAML document too large')
  const lines = text.replaceAll('\r\n', '\n').split('\n')
  const doc: YamlDoc = Object.create(null) as YamlDoc
  let i = 0
  const skippable = (l: string) =>
    l.trim() === '' || l.trimStart().startsWith('#') || l === '---' || l === '...'
  while (i < lines.length) {
    const line = lines[i] ?? ''
    const lineNo = i + 1
    if (skippable(line)) {
      i++
      continue
    }
    if (indentOf(line) !== 0) throw malformed(lineNo, 'unexpected indentation')
    const [key, rest] = splitKey(line, lineNo)
    if (key in doc) throw malformed(lineNo, `duplicate key ${key}`)
    i++
    if (/^!!binary\s+[|>][-+]?$/.test(rest)) {
      let b64 = ''
      while (i < lines.length && ((lines[i] ?? '').startsWith(' ') || (lines[i] ?? '') === '')) {
        b64 += (lines[i] ?? '').trim()
        i++
      }
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0)
        throw malformed(lineNo, 'bad base64')
      doc[key] = new Uint8Array(Buffer.from(b64, 'base64'))
    } else if (rest.startsWith('!!binary ')) {
      const b64 = parseScalar(rest.slice(9), lineNo)
      if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
        throw malformed(lineNo, 'bad base64')
      doc[key] = new Uint8Array(Buffer.from(b64, 'base64'))
    } else if (rest === '[]') {
      doc[key] = []
    } else if (rest === '{}') {
      doc[key] = {}
    } else if (rest === '') {
      // A block sequence (`- x`, possibly indented) or a one-level block mapping.
      const first = lines[i] ?? ''
      if (first.trimStart().startsWith('- ') || first.trim() === '-') {
        const list: string[] = []
        while (i < lines.length && /^\s*-( |$)/.test(lines[i] ?? '')) {
          list.push(String(parseScalar((lines[i] ?? '').trimStart().slice(1), i + 1)))
          i++
        }
        doc[key] = list
      } else if (indentOf(first) > 0 && first.trim() !== '') {
        const map: Record<string, string> = {}
        const ind = indentOf(first)
        while (
          i < lines.length &&
          indentOf(lines[i] ?? '') === ind &&
          (lines[i] ?? '').trim() !== ''
        ) {
          const [k, v] = splitKey((lines[i] ?? '').slice(ind), i + 1)
          map[k] = String(parseScalar(v, i + 1))
          i++
        }
        doc[key] = map
      } else {
        doc[key] = ''
      }
    } else if (
      rest.startsWith('|') ||
      rest.startsWith('>') ||
      rest.startsWith('[') ||
      rest.startsWith('{')
    ) {
      throw malformed(lineNo, 'unsupported YAML construct')
    } else {
      doc[key] = parseScalar(rest, lineNo)
    }
  }
  return doc
}
