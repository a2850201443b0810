/**
 * Writes zip archives field by field, including the lies a hostile archive tells (wrong sizes,
 * counts, offsets, symlink attributes, zip64 end records), for the zip reader's tests.
 *
 * @module
 */
import { crc32, deflateRawSync } from 'node:zlib'

/** One entry; every header field can be overridden. */
export interface RawZipEntry {
  name: string | Uint8Array
  data?: Uint8Array
  /** Bytes written as the entry's data instead of `data` compressed (CRC and size still of `data`). */
  raw?: Uint8Array
  /** 0 stored (default), 8 deflate, anything else as given. */
  method?: number
  /** General-purpose flags (bit 0 encrypted, bit 11 UTF-8). */
  flags?: number
  /** `version made by`; 0x031e = Unix, 3.0. */
  madeBy?: number
  /** External attributes (Unix mode in the high 16 bits). */
  externalAttr?: number
  crc?: number
  compressedSize?: number
  size?: number
  /** Local header offset written in the central directory (default: the real one). */
  offset?: number
}

/** Archive-level overrides. */
export interface RawZipOptions {
  /** Entry count written in the end record (default: the real one). */
  count?: number
  /** Central directory size and offset written in the end record. */
  cdSize?: number
  cdOffset?: number
  /** Writes zip64 end records with these values; the classic record then holds 0xFFFF/0xFFFFFFFF. */
  zip64?: { count: number; cdSize?: number; cdOffset?: number }
  /** Bytes after the end record (a comment length that does not match them is a lie). */
  trailer?: Uint8Array
  commentLength?: number
}

const enc = new TextEncoder()

function le(n: number, bytes: number): number[] {
  const out: number[] = []
  for (let i = 0; i < bytes; i++) out.push(Math.floor(n / 2 ** (8 * i)) % 256)
  return out
}

/** Builds the archive. */
export function buildZip(entries: RawZipEntry[], o: RawZipOptions = {}): Uint8Array {
  const body: number[] = []
  const central: number[] = []
  for (const e of entries) {
    const name = typeof e.name === 'string' ? enc.encode(e.name) : e.name
    const data = e.data ?? new Uint8Array(0)
    const method = e.method ?? 0
    const stored = e.raw ?? (method === 8 ? new Uint8Array(deflateRawSync(data)) : data)
    const crc = e.crc ?? crc32(data)
    const csize = e.compressedSize ?? stored.length
    const size = e.size ?? data.length
    const offset = body.length
    const flags = e.flags ?? 0
    body.push(...le(0x04034b50, 4), ...le(20, 2), ...le(flags, 2), ...le(method, 2))
    body.push(...le(0, 4), ...le(crc, 4), ...le(csize, 4), ...le(size, 4))
    body.push(...le(name.length, 2), ...le(0, 2), ...name, ...stored)
    central.push(...le(0x02014b50, 4), ...le(e.madeBy ?? 0x031e, 2), ...le(20, 2))
    central.push(...le(flags, 2), ...le(method, 2), ...le(0, 4), ...le(crc, 4))
    central.push(...le(csize, 4), ...le(size, 4), ...le(name.length, 2), ...le(0, 2))
    central.push(
      ...le(0, 2),
      ...le(0, 2),
      ...le(0, 2),
      ...le(e.externalAttr ?? 0o100644 * 65536, 4),
    )
    central.push(...le(e.offset ?? offset, 4), ...name)
  }
  const cdOffset = body.length
  const out = [...body, ...central]
  const count = o.count ?? entries.length
  if (o.zip64 !== undefined) {
    const rec = out.length
    const z = o.zip64
    out.push(
      ...le(0x06064b50, 4),
      ...le(44, 8),
      ...le(45, 2),
      ...le(45, 2),
      ...le(0, 4),
      ...le(0, 4),
    )
    out.push(...le(z.count, 8), ...le(z.count, 8), ...le(z.cdSize ?? central.length, 8))
    out.push(...le(z.cdOffset ?? cdOffset, 8))
    out.push(...le(0x07064b50, 4), ...le(0, 4), ...le(rec, 8), ...le(1, 4))
  }
  const trailer = o.trailer ?? new Uint8Array(0)
  out.push(...le(0x06054b50, 4), ...le(0, 2), ...le(0, 2))
  const c16 = o.zip64 ? 0xffff : count
  out.push(...le(c16, 2), ...le(c16, 2))
  out.push(...le(o.zip64 ? 0xffffffff : (o.cdSize ?? central.length), 4))
  out.push(...le(o.zip64 ? 0xffffffff : (o.cdOffset ?? cdOffset), 4))
  out.push(...le(o.commentLength ?? trailer.length, 2), ...trailer)
  return new Uint8Array(out)
}
