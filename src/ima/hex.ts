/**
 * Allocation-free hex helpers for the hot IMA paths (decode straight into a scratch buffer,
 * validate, compare).
 *
 * @module
 */

const HEX_VALUE = new Int8Array(128).fill(-1)
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i
for (let i = 0; i < 6; i++) {
  HEX_VALUE[65 + i] = 10 + i
  HEX_VALUE[97 + i] = 10 + i
}

/**
 * Decodes hex `s[start, end)` into `out` at `at`. Returns the number of bytes written, or -1
 * when the text is not an even number of hex digits or does not fit.
 */
export function decodeHexInto(
  s: string,
  start: number,
  end: number,
  out: Uint8Array,
  at: number,
): number {
  const n = end - start
  if (n < 0 || (n & 1) !== 0) return -1
  const bytes = n >>> 1
  if (at + bytes > out.length) return -1
  for (let i = 0; i < bytes; i++) {
    const a = s.charCodeAt(start + 2 * i)
    const b = s.charCodeAt(start + 2 * i + 1)
    const hi = a < 128 ? (HEX_VALUE[a] as number) : -1
    const lo = b < 128 ? (HEX_VALUE[b] as number) : -1
    if (hi < 0 || lo < 0) return -1
    out[at + i] = (hi << 4) | lo
  }
  return bytes
}

/** True when every byte of `b` is zero. */
export function isAllZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false
  return true
}
