/**
 * Text helpers for UEFI data: mixed-endian EFI_GUIDs, UTF-16LE strings, ASCII event strings and hex.
 *
 * @module
 */

import { MbError } from './errors.ts'

const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) =>
  i.toString(16).padStart(2, '0'),
)

/** Lowercase hex of `b` (no prefix). */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/**
 * Formats a 16-byte EFI_GUID (UEFI 2.10 Appendix A: Data1 u32 LE, Data2/Data3 u16 LE, Data4 bytes)
 * in canonical lowercase text form, e.g. `8be4df61-93ca-11d2-aa0d-00e098032b8c`.
 *
 * @throws {MbError} `ERR_MB_TRUNCATED` unless `b` has 16 bytes.
 */
export function formatGuid(b: Uint8Array): string {
  if (b.length !== 16) throw new MbError('ERR_MB_TRUNCATED', `GUID needs 16 bytes, got ${b.length}`)
  const h = (i: number): string => HEX[b[i] as number] as string
  return (
    h(3) +
    h(2) +
    h(1) +
    h(0) +
    '-' +
    h(5) +
    h(4) +
    '-' +
    h(7) +
    h(6) +
    '-' +
    h(8) +
    h(9) +
    '-' +
    h(10) +
    h(11) +
    h(12) +
    h(13) +
    h(14) +
    h(15)
  )
}

const utf16 = new TextDecoder('utf-16le')
const latin1 = new TextDecoder('latin1')
const utf8Fatal = new TextDecoder('utf-8', { fatal: true })

/**
 * Decodes UTF-16LE, stopping at the first NUL code unit (CHAR16 strings are NUL-terminated). An odd
 * trailing byte is ignored.
 */
export function decodeUtf16z(b: Uint8Array): string {
  let end = b.length & ~1
  for (let i = 0; i + 1 < end; i += 2) {
    if (b[i] === 0 && b[i + 1] === 0) {
      end = i
      break
    }
  }
  return utf16.decode(b.subarray(0, end))
}

/**
 * Decodes an event string as tpm2-tools does for EV_IPL / EV_EFI_ACTION: bytes up to the first NUL,
 * UTF-8 when valid, otherwise Latin-1 (never throws).
 */
export function decodeAsciiz(b: Uint8Array): string {
  const nul = b.indexOf(0)
  const s = nul < 0 ? b : b.subarray(0, nul)
  try {
    return utf8Fatal.decode(s)
  } catch {
    return latin1.decode(s)
  }
}

/** Parses `8be4df61-93ca-…` back into the 16 mixed-endian bytes (inverse of {@link formatGuid}). */
export function parseGuid(s: string): Uint8Array {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(s)
  if (m === null)
    throw new MbError('ERR_MB_CREATE', `not a GUID: ${JSON.stringify(s.slice(0, 40))}`)
  const hex = (x: string): number[] => (x.match(/../g) ?? []).map((p) => Number.parseInt(p, 16))
  const [, a = '', b = '', c = '', d = '', e = ''] = m
  return Uint8Array.from([
    ...hex(a).reverse(),
    ...hex(b).reverse(),
    ...hex(c).reverse(),
    ...hex(d),
    ...hex(e),
  ])
}
