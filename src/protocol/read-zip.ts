/**
 * A strict, bounded zip reader for payloads (the agent's `extract_payload_zip`, the tenant's
 * `--include x.zip`). Everything is checked against the central directory before a byte is
 * inflated, so a hostile archive costs at most its own size plus the configured output:
 *
 * - the end record and its zip64 form: one disk, entry count that fits the directory's size,
 *   directory inside the file, at most {@link ZipLimits.maxEntries} entries;
 * - names: relative, `/`-separated, no `..`, `.`, empty or over-long segments, no NUL, control
 *   characters or backslashes; no duplicates; no name that is a file in one entry and a directory
 *   in another (`a` and `a/b`); none equal to a reserved name (the agent's `dec_payload_file`);
 * - types: regular files and directories only (no symlinks or devices), stored or deflated, not
 *   encrypted;
 * - sizes: each entry's data inside the archive and apart from the others (no overlapping
 *   "quoted" bombs), total output under {@link ZipLimits.maxTotalBytes}, large entries at most
 *   {@link ZipLimits.maxRatio} times their compressed size; inflation stops at the declared size,
 *   and size and CRC-32 must match.
 *
 * @module
 */

import { crc32, inflateRawSync } from 'node:zlib'
import { KeylimeError } from '../errors.ts'

/** Stable codes carried by {@link ZipError}. */
export const ZIP_ERROR_CODES = [
  /** The archive structure is malformed (end record, directory, headers, data, CRC). */
  'ERR_ZIP_FORMAT',
  /** A limit (entries, total size, compression ratio) is exceeded. */
  'ERR_ZIP_LIMIT',
  /** An entry name is unsafe, duplicated, or collides with another entry or a reserved name. */
  'ERR_ZIP_ENTRY_NAME',
  /** Encryption, a compression method other than stored/deflate, a symlink or special file. */
  'ERR_ZIP_UNSUPPORTED',
] as const

/** A stable zip error code. */
export type ZipErrorCode = (typeof ZIP_ERROR_CODES)[number]

/** A rejected archive (HTTP 400: the bytes came from a request or a file given by the user). */
export class ZipError extends KeylimeError {
  /** The stable error code. */
  declare readonly code: ZipErrorCode

  constructor(code: ZipErrorCode, message: string) {
    super(code, message, { status: 400 })
    this.name = 'ZipError'
  }
}

/** Bounds applied by {@link readZip}. */
export interface ZipLimits {
  /** Entries (files and directories). */
  maxEntries: number
  /** Sum of the uncompressed sizes. */
  maxTotalBytes: number
  /** Largest uncompressed/compressed ratio for entries over {@link RATIO_FLOOR} bytes. */
  maxRatio: number
}

/** Defaults: far above any Keylime payload (the agent API reads at most 1 MiB of request). */
export const DEFAULT_ZIP_LIMITS: ZipLimits = {
  maxEntries: 4096,
  maxTotalBytes: 64 * 1024 * 1024,
  maxRatio: 200,
}

/** Entries up to this size may compress arbitrarily well (small files of one repeated byte). */
export const RATIO_FLOOR = 64 * 1024

/** One extracted entry. */
export interface ZipEntry {
  /** The name as stored, directories without their trailing `/`. */
  name: string
  isDirectory: boolean
  /** The content (empty for directories). */
  data: Uint8Array
}

/** Options of {@link readZip}. */
export interface ReadZipOptions {
  limits?: Partial<ZipLimits>
  /** Names no entry may take, as a file or as a directory (e.g. the decrypted payload's file). */
  reserved?: readonly string[]
}

const SIG_EOCD = 0x06054b50
const SIG_ZIP64_LOCATOR = 0x07064b50
const SIG_ZIP64_EOCD = 0x06064b50
const SIG_CENTRAL = 0x02014b50
const SIG_LOCAL = 0x04034b50
const EOCD_SIZE = 22
const CENTRAL_SIZE = 46
const LOCAL_SIZE = 30
const MAX_NAME = 4095
const MAX_SEGMENT = 255
const S_IFMT = 0o170000
const ALLOWED_TYPES = new Set([0, 0o100000, 0o040000])

interface CentralEntry {
  name: string
  isDirectory: boolean
  method: number
  crc: number
  compressed: number
  size: number
  offset: number
}

function fail(code: ZipErrorCode, message: string): never {
  throw new ZipError(code, message)
}

/** Little-endian reads that fail as {@link ZipError} instead of reading out of bounds. */
class LeReader {
  readonly bytes: Uint8Array
  readonly #v: DataView
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
    this.#v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  #need(at: number, n: number): void {
    if (at < 0 || at + n > this.bytes.length) fail('ERR_ZIP_FORMAT', 'record out of bounds')
  }
  u16(at: number): number {
    this.#need(at, 2)
    return this.#v.getUint16(at, true)
  }
  u32(at: number): number {
    this.#need(at, 4)
    return this.#v.getUint32(at, true)
  }
  u64(at: number): number {
    const v = this.u32(at) + this.u32(at + 4) * 2 ** 32
    if (!Number.isSafeInteger(v)) fail('ERR_ZIP_FORMAT', 'zip64 value out of range')
    return v
  }
  slice(at: number, n: number): Uint8Array {
    this.#need(at, n)
    return this.bytes.subarray(at, at + n)
  }
}

/** Finds the end-of-central-directory record: the last one whose comment ends the file. */
function findEocd(r: LeReader): number {
  const len = r.bytes.length
  for (let at = len - EOCD_SIZE; at >= 0 && at >= len - EOCD_SIZE - 0xffff; at--) {
    if (r.u32(at) === SIG_EOCD && at + EOCD_SIZE + r.u16(at + 20) === len) return at
  }
  return fail('ERR_ZIP_FORMAT', 'no end-of-central-directory record')
}

/** The central directory's place and entry count, from the end record or its zip64 form. */
function readDirectoryBounds(r: LeReader, limits: ZipLimits) {
  const eocd = findEocd(r)
  let count = r.u16(eocd + 10)
  let size = r.u32(eocd + 12)
  let offset = r.u32(eocd + 16)
  let end = eocd
  if (r.u16(eocd + 4) !== 0 || r.u16(eocd + 6) !== 0 || r.u16(eocd + 8) !== count)
    fail('ERR_ZIP_FORMAT', 'multi-disk archives are not supported')
  if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
    const loc = eocd - 20
    if (loc < 0 || r.u32(loc) !== SIG_ZIP64_LOCATOR) fail('ERR_ZIP_FORMAT', 'no zip64 locator')
    const rec = r.u64(loc + 8)
    if (rec > loc - 56 || r.u32(rec) !== SIG_ZIP64_EOCD)
      fail('ERR_ZIP_FORMAT', 'bad zip64 end record')
    if (r.u32(rec + 16) !== 0 || r.u32(rec + 20) !== 0 || r.u64(rec + 24) !== r.u64(rec + 32))
      fail('ERR_ZIP_FORMAT', 'multi-disk archives are not supported')
    count = r.u64(rec + 32)
    size = r.u64(rec + 40)
    offset = r.u64(rec + 48)
    end = rec
  }
  if (count > limits.maxEntries)
    fail('ERR_ZIP_LIMIT', `more than ${limits.maxEntries} entries (${count} declared)`)
  if (offset + size > end) fail('ERR_ZIP_FORMAT', 'central directory outside the archive')
  if (count * CENTRAL_SIZE > size)
    fail('ERR_ZIP_FORMAT', `central directory too small for ${count} entries`)
  return { count, offset, size }
}

/** Reads the zip64 extra field's values for the fields that hold 0xFFFFFFFF. */
function applyZip64(r: LeReader, extra: number, extraLen: number, e: CentralEntry): void {
  for (let at = extra; at + 4 <= extra + extraLen;) {
    const id = r.u16(at)
    const len = r.u16(at + 2)
    if (at + 4 + len > extra + extraLen) break
    if (id === 0x0001) {
      let p = at + 4
      const next = (): number => {
        if (p + 8 > at + 4 + len) fail('ERR_ZIP_FORMAT', 'short zip64 extra field')
        const v = r.u64(p)
        p += 8
        return v
      }
      if (e.size === 0xffffffff) e.size = next()
      if (e.compressed === 0xffffffff) e.compressed = next()
      if (e.offset === 0xffffffff) e.offset = next()
      return
    }
    at += 4 + len
  }
  if (e.size === 0xffffffff || e.compressed === 0xffffffff || e.offset === 0xffffffff)
    fail('ERR_ZIP_FORMAT', 'missing zip64 extra field')
}

const utf8 = new TextDecoder('utf-8', { fatal: true })
const latin1 = new TextDecoder('latin1')

function decodeName(bytes: Uint8Array, isUtf8: boolean): string {
  try {
    return (isUtf8 ? utf8 : latin1).decode(bytes)
  } catch {
    return fail('ERR_ZIP_ENTRY_NAME', 'entry name is not valid UTF-8')
  }
}

/** Rejects names that could leave the target directory or that the file system cannot hold. */
function checkName(name: string, shown: string): void {
  if (name.length === 0 || name.length > MAX_NAME) fail('ERR_ZIP_ENTRY_NAME', `bad name length`)
  if (/[\u0000-\u001f\u007f\\]/.test(name))
    fail('ERR_ZIP_ENTRY_NAME', `entry ${shown} has a control character or backslash`)
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name))
    fail('ERR_ZIP_ENTRY_NAME', `entry ${shown} is an absolute path`)
  for (const seg of name.split('/')) {
    if (seg === '..' || seg === '.' || seg === '')
      fail('ERR_ZIP_ENTRY_NAME', `entry ${shown} has a ".", ".." or empty path segment`)
    if (Buffer.byteLength(seg) > MAX_SEGMENT)
      fail('ERR_ZIP_ENTRY_NAME', `entry ${shown} has a segment over ${MAX_SEGMENT} bytes`)
  }
}

function readCentralDirectory(
  r: LeReader,
  limits: ZipLimits,
): { entries: CentralEntry[]; offset: number } {
  const { count, offset, size } = readDirectoryBounds(r, limits)
  const entries: CentralEntry[] = []
  const dirEnd = offset + size
  let at = offset
  for (let i = 0; i < count; i++) {
    if (at + CENTRAL_SIZE > dirEnd || r.u32(at) !== SIG_CENTRAL)
      fail('ERR_ZIP_FORMAT', `central directory entry ${i} is malformed`)
    const madeBy = r.u16(at + 4)
    const flags = r.u16(at + 8)
    const nameLen = r.u16(at + 28)
    const extraLen = r.u16(at + 30)
    const next = at + CENTRAL_SIZE + nameLen + extraLen + r.u16(at + 32)
    if (next > dirEnd) fail('ERR_ZIP_FORMAT', `central directory entry ${i} is malformed`)
    const raw = decodeName(r.slice(at + CENTRAL_SIZE, nameLen), (flags & 0x800) !== 0)
    const shown = JSON.stringify(raw.slice(0, 80))
    const isDirectory = raw.endsWith('/')
    const name = isDirectory ? raw.slice(0, -1) : raw
    checkName(name, shown)
    if (flags & 0x41) fail('ERR_ZIP_UNSUPPORTED', `entry ${shown} is encrypted`)
    const type = madeBy >> 8 === 3 ? (r.u32(at + 38) >>> 16) & S_IFMT : 0
    if (!ALLOWED_TYPES.has(type))
      fail('ERR_ZIP_UNSUPPORTED', `entry ${shown} is a symlink or special file`)
    const e: CentralEntry = {
      name,
      isDirectory: isDirectory || type === 0o040000,
      method: r.u16(at + 10),
      crc: r.u32(at + 16),
      compressed: r.u32(at + 20),
      size: r.u32(at + 24),
      offset: r.u32(at + 42),
    }
    applyZip64(r, at + CENTRAL_SIZE + nameLen, extraLen, e)
    if (e.method !== 0 && e.method !== 8)
      fail('ERR_ZIP_UNSUPPORTED', `entry ${shown} uses compression method ${e.method}`)
    if (e.isDirectory && e.size !== 0) fail('ERR_ZIP_FORMAT', `directory ${shown} has content`)
    if (e.method === 0 && e.size !== e.compressed)
      fail('ERR_ZIP_FORMAT', `stored entry ${shown} has two sizes`)
    if (e.size > RATIO_FLOOR && e.size > e.compressed * limits.maxRatio)
      fail('ERR_ZIP_LIMIT', `entry ${shown} expands more than ${limits.maxRatio} times`)
    entries.push(e)
    at = next
  }
  return { entries, offset }
}

/** Rejects duplicates, file/directory collisions and reserved names; bounds the total size. */
function checkEntrySet(entries: CentralEntry[], limits: ZipLimits, reserved: readonly string[]) {
  const files = new Set<string>(reserved)
  const dirs = new Set<string>()
  const explicitDirs = new Set<string>()
  let total = 0
  for (const e of entries) {
    const shown = JSON.stringify(e.name.slice(0, 80))
    total += e.size
    if (total > limits.maxTotalBytes)
      fail('ERR_ZIP_LIMIT', `more than ${limits.maxTotalBytes} bytes uncompressed`)
    const parts = e.name.split('/')
    for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'))
    if (e.isDirectory) {
      if (explicitDirs.has(e.name)) fail('ERR_ZIP_ENTRY_NAME', `entry ${shown} appears twice`)
      explicitDirs.add(e.name)
      dirs.add(e.name)
    } else {
      if (files.has(e.name))
        fail('ERR_ZIP_ENTRY_NAME', `entry ${shown} appears twice or is reserved`)
      files.add(e.name)
    }
  }
  for (const d of dirs)
    if (files.has(d))
      fail('ERR_ZIP_ENTRY_NAME', `${JSON.stringify(d.slice(0, 80))} is both a file and a directory`)
}

/** Where each entry's data lies, checked to be inside the archive and not to overlap. */
function locateData(r: LeReader, entries: CentralEntry[], dirOffset: number): number[] {
  const starts = entries.map((e) => {
    if (e.offset + LOCAL_SIZE > dirOffset || r.u32(e.offset) !== SIG_LOCAL)
      fail('ERR_ZIP_FORMAT', 'bad local header')
    const start = e.offset + LOCAL_SIZE + r.u16(e.offset + 26) + r.u16(e.offset + 28)
    if (start + e.compressed > dirOffset) fail('ERR_ZIP_FORMAT', 'entry data outside the archive')
    return start
  })
  const spans = entries.map((e, i) => [e.offset, (starts[i] as number) + e.compressed] as const)
  spans.sort((a, b) => a[0] - b[0])
  let prevEnd = 0
  for (const [start, end] of spans) {
    if (start < prevEnd) fail('ERR_ZIP_FORMAT', 'entries overlap')
    prevEnd = end
  }
  return starts
}

function inflateEntry(e: CentralEntry, data: Uint8Array): Uint8Array {
  let out: Uint8Array
  if (e.method === 0) out = data
  else {
    try {
      out = inflateRawSync(data, { maxOutputLength: Math.max(e.size, 1) })
    } catch {
      return fail(
        'ERR_ZIP_FORMAT',
        `entry ${JSON.stringify(e.name.slice(0, 80))} does not inflate to its size`,
      )
    }
  }
  if (out.length !== e.size || crc32(out) !== e.crc)
    fail(
      'ERR_ZIP_FORMAT',
      `entry ${JSON.stringify(e.name.slice(0, 80))} fails its size or CRC check`,
    )
  return out
}

/**
 * Validates `zip` whole, then extracts it.
 *
 * @throws {@link ZipError} for any malformed, unsafe or oversized archive; nothing else.
 *
 * @example
 * ```ts
 * for (const e of readZip(bytes, { reserved: ['decrypted_payload'] })) console.log(e.name)
 * ```
 */
export function readZip(zip: Uint8Array, opts: ReadZipOptions = {}): ZipEntry[] {
  const limits = { ...DEFAULT_ZIP_LIMITS, ...opts.limits }
  const r = new LeReader(zip)
  const { entries, offset } = readCentralDirectory(r, limits)
  checkEntrySet(entries, limits, opts.reserved ?? [])
  const starts = locateData(r, entries, offset)
  return entries.map((e, i) => ({
    name: e.name,
    isDirectory: e.isDirectory,
    data: e.isDirectory
      ? new Uint8Array(0)
      : inflateEntry(e, r.slice(starts[i] as number, e.compressed)),
  }))
}
