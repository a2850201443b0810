/**
 * Reads an initramfs image (`/boot/initrd.img-*`, `/boot/initramfs-*.img`) the way the kernel
 * unpacks it (`init/initramfs.c` `unpack_to_rootfs`) and lists the regular files it leaves in the
 * root filesystem, with the paths IMA will log for them.
 *
 * An image is a sequence of segments: uncompressed cpio "newc" archives (typically an early
 * microcode archive made by dracut or initramfs-tools) and a compressed segment holding the main
 * archive, with NUL padding in between. A compressed segment (gzip via `node:zlib`, zstd via
 * `node:zlib` zstd) runs to the end of the image, as upstream Keylime extracts it; its output is
 * read as a stream of archives. Other compressions (xz, lzma, bzip2, lzo, lz4) are detected by
 * their magic and refused with `ERR_IMA_UNSUPPORTED_COMPRESSION`. Decompressed output is capped
 * (`maxDecompressedBytes`), so a zip bomb fails with `ERR_IMA_LIMIT`.
 *
 * The file list follows upstream (`keylime/policy/initrd.py`, dracut `skipcpio`): when the image
 * starts with an uncompressed archive followed by more data, that first (early) archive is not part
 * of the policy — the kernel consumes early microcode itself and IMA never measures it.
 *
 * @module
 */

import { gunzipSync, zstdDecompressSync } from 'node:zlib'
import { ImaError } from '../ima/errors.ts'
import {
  type CpioArchive,
  type CpioLimits,
  isCpioMagic,
  readCpioArchive,
  readCpioStream,
} from './read-cpio.ts'

/** Compression of a segment. */
export type InitramfsCompression = 'none' | 'gzip' | 'zstd'

/** One segment of an image. */
export interface InitramfsSegment {
  /** Offset of the segment in the image. */
  offset: number
  compression: InitramfsCompression
  /** Archives of the segment (one for `none`; the decompressed stream's archives otherwise). */
  archives: CpioArchive[]
}

/** Caps of {@link readInitramfs}. */
export interface InitramfsLimits extends CpioLimits {
  /** Cap on the output of a compressed segment (default 2 GiB − 1, the largest Buffer allowed). */
  maxDecompressedBytes?: number
}

/** Magic numbers of compressions the kernel accepts for initramfs (`lib/decompress.c`). */
const UNSUPPORTED: ReadonlyArray<readonly [string, readonly number[]]> = [
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['lzma', [0x5d, 0x00, 0x00]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['lz4', [0x04, 0x22, 0x4d, 0x18]],
]
const GZIP = [0x1f, 0x8b]
const GZIP_OLD = [0x1f, 0x9e]
const ZSTD = [0x28, 0xb5, 0x2f, 0xfd]

function startsWith(bytes: Uint8Array, pos: number, magic: readonly number[]): boolean {
  if (pos + magic.length > bytes.length) return false
  for (let i = 0; i < magic.length; i++) if (bytes[pos + i] !== magic[i]) return false
  return true
}

function decompress(
  kind: 'gzip' | 'zstd',
  input: Uint8Array,
  offset: number,
  cap: number,
): Uint8Array {
  try {
    const out =
      kind === 'gzip'
        ? gunzipSync(input, { maxOutputLength: cap })
        : zstdDecompressSync(input, { maxOutputLength: cap })
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError)
      throw new ImaError(
        'ERR_IMA_LIMIT',
        `${kind} segment at offset ${offset} decompresses to more than ${cap} bytes`,
        { cause: e },
      )
    throw new ImaError(
      'ERR_IMA_CPIO_FORMAT',
      `corrupt ${kind} segment at offset ${offset}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    )
  }
}

/**
 * Splits an image into segments and reads every archive.
 *
 * @throws {ImaError} `ERR_IMA_CPIO_FORMAT` (malformed archive, corrupt compressed data, unknown
 *   data), `ERR_IMA_UNSUPPORTED_COMPRESSION` (xz, lzma, bzip2, lzo, lz4), `ERR_IMA_LIMIT`.
 */
export function readInitramfs(bytes: Uint8Array, limits: InitramfsLimits = {}): InitramfsSegment[] {
  const cap = Math.min(limits.maxDecompressedBytes ?? 0x7fffffff, 0x7fffffff)
  const counter = { entries: 0 }
  const segments: InitramfsSegment[] = []
  let pos = 0
  while (pos < bytes.length) {
    if (bytes[pos] === 0) {
      pos++
      continue
    }
    if (isCpioMagic(bytes, pos)) {
      if (segments.length >= (limits.maxArchives ?? 1024))
        throw new ImaError('ERR_IMA_LIMIT', `initramfs: more than ${segments.length} segments`)
      const a = readCpioArchive(bytes, pos, limits, counter)
      segments.push({ offset: pos, compression: 'none', archives: [a] })
      pos = a.end
      continue
    }
    const kind = startsWith(bytes, pos, ZSTD)
      ? 'zstd'
      : startsWith(bytes, pos, GZIP) || startsWith(bytes, pos, GZIP_OLD)
        ? 'gzip'
        : undefined
    if (kind !== undefined) {
      const out = decompress(kind, bytes.subarray(pos), pos, cap)
      const archives = readCpioStream(out, limits)
      if (archives.length === 0)
        throw new ImaError(
          'ERR_IMA_CPIO_FORMAT',
          `${kind} segment at offset ${pos} holds no cpio archive (empty or truncated)`,
        )
      segments.push({ offset: pos, compression: kind, archives })
      break
    }
    const other = UNSUPPORTED.find(([, m]) => startsWith(bytes, pos, m))
    if (other !== undefined)
      throw new ImaError(
        'ERR_IMA_UNSUPPORTED_COMPRESSION',
        `${other[0]}-compressed initramfs segment at offset ${pos} is not supported ` +
          '(gzip and zstd are); rebuild the initramfs with gzip or zstd, or unpack it and use --rootfs',
      )
    throw new ImaError(
      'ERR_IMA_CPIO_FORMAT',
      `unrecognised data at offset ${pos}: neither a cpio archive nor a known compression`,
    )
  }
  return segments
}

type Inode = { data: Uint8Array }
type Node =
  | { kind: 'file'; inode: Inode }
  | { kind: 'directory' }
  | { kind: 'symlink'; target: string }
  | { kind: 'other' }

const MAX_SYMLINK_HOPS = 40

/** Lexical path join and normalisation, clamped at the root (the kernel's `/..` is `/`). */
function normalize(parts: string[], name: string): string[] {
  const out = name.startsWith('/') ? [] : [...parts]
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue
    if (p === '..') out.pop()
    else out.push(p)
  }
  return out
}

/** Resolves the directory part of `name` through symlinks already unpacked (bounded hops). */
function resolveParent(fs: Map<string, Node>, name: string): string | undefined {
  const want = normalize([], name)
  const leaf = want.pop()
  if (leaf === undefined) return undefined
  let hops = 0
  let done: string[] = []
  const todo = [...want]
  while (todo.length > 0) {
    const p = todo.shift() as string
    const cand = normalize(done, p)
    const node = fs.get(`/${cand.join('/')}`)
    if (node?.kind === 'symlink') {
      if (++hops > MAX_SYMLINK_HOPS) return undefined
      const target = node.target.startsWith('/') ? node.target : [...done, node.target].join('/')
      todo.unshift(...normalize([], target))
      done = []
      continue
    }
    done = cand
  }
  return `/${[...done, leaf].join('/')}`
}

const utf8 = new TextDecoder('utf-8')
const PATH_MAX = 4096

/**
 * The regular files an image leaves in the root filesystem, runtime path → content, after the
 * kernel's rules: later members replace earlier ones at the same path; hard links (`c_nlink` ≥ 2,
 * same `c_ino`/device within one archive) share the data of the member that carries it; parent
 * directories resolve through symlinks unpacked before; symlinks, devices, FIFOs and sockets are
 * not files. The early archive is left out as described in the module header.
 */
export function initramfsFiles(segments: readonly InitramfsSegment[]): Map<string, Uint8Array> {
  const archives = segments.flatMap((s) => s.archives)
  const first = segments[0]
  if (first !== undefined && first.compression === 'none' && segments.length > 1) archives.shift()
  const fs = new Map<string, Node>()
  for (const a of archives) {
    const links = new Map<string, Inode>()
    for (const e of a.entries) {
      const path = resolveParent(fs, e.name)
      if (path === undefined || path === '/') continue
      if (e.kind === 'file') {
        let inode: Inode | undefined
        if (e.nlink >= 2) {
          const key = `${e.ino}:${e.devMajor}:${e.devMinor}`
          inode = links.get(key)
          if (inode === undefined) {
            inode = { data: e.data }
            links.set(key, inode)
          } else if (e.data.length > 0) inode.data = e.data
        }
        fs.set(path, { kind: 'file', inode: inode ?? { data: e.data } })
      } else if (e.kind === 'symlink' && e.data.length > 0 && e.data.length < PATH_MAX) {
        fs.set(path, { kind: 'symlink', target: utf8.decode(e.data) })
      } else if (e.kind === 'directory') {
        if (fs.get(path)?.kind !== 'directory') fs.set(path, { kind: 'directory' })
      } else fs.set(path, { kind: 'other' })
    }
  }
  const files = new Map<string, Uint8Array>()
  for (const [p, n] of fs) if (n.kind === 'file') files.set(p, n.inode.data)
  return files
}
