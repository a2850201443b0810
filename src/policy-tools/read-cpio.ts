/**
 * A total, bounds-checked reader of cpio "newc" archives (magic `070701`, and `070702` with a
 * per-file checksum), the format of Linux initramfs images (kernel
 * `Documentation/driver-api/early-userspace/buffer-format.rst`).
 *
 * Each member is a 110-byte ASCII header (magic + 13 eight-digit hex fields), the NUL-terminated
 * name, padding to a 4-byte boundary, the file data and padding again; an archive ends with the
 * member named `TRAILER!!!`. An image may hold several archives one after another, separated by
 * NUL padding. Alignment is relative to the start of each archive.
 *
 * Nothing is allocated from an unchecked length: every field is validated against the bytes that
 * remain, and file data are views into the input. Malformed input throws an {@link ImaError}
 * (`ERR_IMA_CPIO_FORMAT`, or `ERR_IMA_LIMIT` for a configured cap), never anything else.
 *
 * @module
 */

import { ImaError } from '../ima/errors.ts'

/** The kind of a member, from the `S_IFMT` bits of its mode. */
export type CpioKind = 'file' | 'directory' | 'symlink' | 'other'

/** One member of a newc archive. */
export interface CpioEntry {
  /** Name as stored (without the NUL), decoded as UTF-8. */
  name: string
  /** Offset of the member's header in the buffer that was read. */
  offset: number
  ino: number
  mode: number
  uid: number
  gid: number
  nlink: number
  mtime: number
  devMajor: number
  devMinor: number
  rdevMajor: number
  rdevMinor: number
  /** Member kind; devices, FIFOs and sockets are `other`. */
  kind: CpioKind
  /** File data (symlink target for symlinks): a view into the input. */
  data: Uint8Array
}

/** One archive: its members up to (not including) `TRAILER!!!`. */
export interface CpioArchive {
  /** Offset of the first header in the buffer that was read. */
  offset: number
  /** Offset just past the trailer member and its padding. */
  end: number
  /** Members in archive order. */
  entries: CpioEntry[]
}

/** Caps of {@link readCpioArchive} and {@link readCpioStream}. */
export interface CpioLimits {
  /** Members across all archives read by one call (default 1,000,000). */
  maxEntries?: number
  /** Name size including the NUL (default 4096, the kernel's `PATH_MAX`). */
  maxNameSize?: number
  /** Archives in one stream (default 1024). */
  maxArchives?: number
}

/** Size of a newc header. */
export const CPIO_HEADER_SIZE = 110
const TRAILER = 'TRAILER!!!'
const S_IFMT = 0o170000

const MAGIC_NEWC = [0x30, 0x37, 0x30, 0x37, 0x30, 0x31] // "070701"

/** True when `bytes` holds a newc (`070701`) or newc-crc (`070702`) magic at `pos`. */
export function isCpioMagic(bytes: Uint8Array, pos: number): boolean {
  if (pos < 0 || pos + 6 > bytes.length) return false
  for (let i = 0; i < 5; i++) if (bytes[pos + i] !== MAGIC_NEWC[i]) return false
  const last = bytes[pos + 5]
  return last === 0x31 || last === 0x32
}

function kindOf(mode: number): CpioKind {
  switch (mode & S_IFMT) {
    case 0o100000:
      return 'file'
    case 0o040000:
      return 'directory'
    case 0o120000:
      return 'symlink'
    default:
      return 'other'
  }
}

function fail(msg: string, offset: number): never {
  throw new ImaError('ERR_IMA_CPIO_FORMAT', `cpio: ${msg} at offset ${offset}`)
}

/** Reads one eight-digit hex field; rejects anything but `[0-9A-Fa-f]`. */
function hex8(bytes: Uint8Array, pos: number, field: string, header: number): number {
  let v = 0
  for (let i = 0; i < 8; i++) {
    const c = bytes[pos + i] as number
    let d: number
    if (c >= 0x30 && c <= 0x39) d = c - 0x30
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57
    else fail(`field ${field} is not hexadecimal`, header)
    v = v * 16 + d
  }
  return v
}

const align4 = (base: number, pos: number): number => base + ((pos - base + 3) & ~3)
const decoder = new TextDecoder('utf-8')

/**
 * Reads one archive starting at `offset` (which must hold a newc magic) up to and including its
 * `TRAILER!!!` member.
 *
 * @throws {ImaError} `ERR_IMA_CPIO_FORMAT` (bad magic, non-hex field, name without its NUL, data
 *   past the end, checksum mismatch, missing trailer), `ERR_IMA_LIMIT` (a {@link CpioLimits} cap).
 */
export function readCpioArchive(
  bytes: Uint8Array,
  offset = 0,
  limits: CpioLimits = {},
  counter: { entries: number } = { entries: 0 },
): CpioArchive {
  const maxEntries = limits.maxEntries ?? 1_000_000
  const maxNameSize = limits.maxNameSize ?? 4096
  const entries: CpioEntry[] = []
  let pos = offset
  for (;;) {
    const header = pos
    if (header + CPIO_HEADER_SIZE > bytes.length) fail('truncated header (no TRAILER!!!)', header)
    if (!isCpioMagic(bytes, header)) fail('bad magic (expected 070701 or 070702)', header)
    const crc = bytes[header + 5] === 0x32
    const f = (i: number, name: string) => hex8(bytes, header + 6 + i * 8, name, header)
    const ino = f(0, 'c_ino')
    const mode = f(1, 'c_mode')
    const uid = f(2, 'c_uid')
    const gid = f(3, 'c_gid')
    const nlink = f(4, 'c_nlink')
    const mtime = f(5, 'c_mtime')
    const size = f(6, 'c_filesize')
    const devMajor = f(7, 'c_devmajor')
    const devMinor = f(8, 'c_devminor')
    const rdevMajor = f(9, 'c_rdevmajor')
    const rdevMinor = f(10, 'c_rdevminor')
    const nameSize = f(11, 'c_namesize')
    const check = f(12, 'c_check')
    if (nameSize === 0) fail('empty name (c_namesize 0)', header)
    if (nameSize > maxNameSize)
      throw new ImaError(
        'ERR_IMA_LIMIT',
        `cpio: name of ${nameSize} bytes exceeds ${maxNameSize} at offset ${header}`,
      )
    const nameStart = header + CPIO_HEADER_SIZE
    if (nameStart + nameSize > bytes.length) fail('name past the end of the data', header)
    const nameBytes = bytes.subarray(nameStart, nameStart + nameSize - 1)
    if (bytes[nameStart + nameSize - 1] !== 0) fail('name is not NUL-terminated', header)
    if (nameBytes.includes(0)) fail('NUL byte inside a name', header)
    const dataStart = align4(offset, nameStart + nameSize)
    if (dataStart + size > bytes.length) fail(`${size}-byte data past the end`, header)
    const data = bytes.subarray(dataStart, dataStart + size)
    pos = Math.min(align4(offset, dataStart + size), bytes.length)
    const name = decoder.decode(nameBytes)
    if (name === TRAILER) return { offset, end: pos, entries }
    const kind = kindOf(mode)
    if (crc && kind === 'file') {
      let sum = 0
      for (let i = 0; i < data.length; i++) sum = (sum + (data[i] as number)) >>> 0
      if (sum !== check) fail(`checksum mismatch for '${name}'`, header)
    }
    if (++counter.entries > maxEntries)
      throw new ImaError('ERR_IMA_LIMIT', `cpio: more than ${maxEntries} members`)
    entries.push({
      name,
      offset: header,
      ino,
      mode,
      uid,
      gid,
      nlink,
      mtime,
      devMajor,
      devMinor,
      rdevMajor,
      rdevMinor,
      kind,
      data,
    })
  }
}

/**
 * Reads a stream of uncompressed archives: archives one after another, NUL bytes between and after
 * them skipped (the kernel's `unpack_to_rootfs` rule). An empty or all-NUL stream gives no archives.
 *
 * @throws {ImaError} `ERR_IMA_CPIO_FORMAT` for anything but NUL padding between archives, and as
 *   {@link readCpioArchive}.
 */
export function readCpioStream(bytes: Uint8Array, limits: CpioLimits = {}): CpioArchive[] {
  const maxArchives = limits.maxArchives ?? 1024
  const counter = { entries: 0 }
  const archives: CpioArchive[] = []
  let pos = 0
  while (pos < bytes.length) {
    if (bytes[pos] === 0) {
      pos++
      continue
    }
    if (!isCpioMagic(bytes, pos)) fail('data that is neither NUL padding nor a cpio archive', pos)
    if (archives.length >= maxArchives)
      throw new ImaError('ERR_IMA_LIMIT', `cpio: more than ${maxArchives} archives`)
    const a = readCpioArchive(bytes, pos, limits, counter)
    archives.push(a)
    pos = a.end
  }
  return archives
}
