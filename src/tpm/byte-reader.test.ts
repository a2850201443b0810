import { describe, expect, test } from 'bun:test'
import { ByteReader } from './byte-reader.ts'
import { ByteWriter } from './byte-writer.ts'
import { isTpmError } from './errors.ts'

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    return isTpmError(e) ? e.code : `untyped:${String(e)}`
  }
  return undefined
}

describe('ByteReader', () => {
  test('reads big-endian integers and TPM2Bs, tracks offset and remaining', () => {
    const r = new ByteReader(
      Uint8Array.from([
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0, 2, 0xaa, 0xbb, 0, 0, 0, 0, 0, 0, 1, 0,
      ]),
    )
    expect(r.u8()).toBe(1)
    expect(r.u16()).toBe(0x0203)
    expect(r.u32()).toBe(0x04050607)
    expect([...r.tpm2b()]).toEqual([0xaa, 0xbb])
    expect(r.offset).toBe(11)
    expect(r.u64()).toBe(0x100n)
    expect(r.remaining).toBe(0)
    r.end()
  })

  test('little-endian option', () => {
    const r = new ByteReader(Uint8Array.from([1, 0, 2, 0, 0, 0]), { littleEndian: true })
    expect(r.u16()).toBe(1)
    expect(r.u32()).toBe(2)
  })

  test('every read past the end is ERR_TPM_TRUNCATED and does not advance', () => {
    const data = Uint8Array.from([0, 5, 1, 2])
    for (const read of [
      (r: ByteReader) => r.u64(),
      (r: ByteReader) => r.bytes(5),
      (r: ByteReader) => r.tpm2b(),
      (r: ByteReader) => r.bytes(-1),
      (r: ByteReader) => r.bytes(Number.NaN),
    ]) {
      const r = new ByteReader(data)
      expect(code(() => read(r))).toBe('ERR_TPM_TRUNCATED')
      expect(r.offset).toBeLessThanOrEqual(2)
    }
    const r = new ByteReader(new Uint8Array(0))
    expect(code(() => r.u8())).toBe('ERR_TPM_TRUNCATED')
  })

  test('end() rejects leftovers with ERR_TPM_TRAILING_BYTES', () => {
    const r = new ByteReader(Uint8Array.from([1, 2]))
    r.u8()
    expect(code(() => r.end())).toBe('ERR_TPM_TRAILING_BYTES')
  })

  test('bytes() returns a view, not a copy', () => {
    const data = Uint8Array.from([1, 2, 3])
    const v = new ByteReader(data).bytes(2)
    data[0] = 9
    expect(v[0]).toBe(9)
  })

  test('works on a subarray with a non-zero byteOffset', () => {
    const data = Uint8Array.from([0xff, 0xff, 0x12, 0x34])
    expect(new ByteReader(data.subarray(2)).u16()).toBe(0x1234)
  })
})

describe('ByteWriter', () => {
  test('round-trips with ByteReader and grows past its capacity', () => {
    const w = new ByteWriter({ capacity: 1 })
    const big = new Uint8Array(1000).fill(7)
    w.u8(1)
      .u16(0xbeef)
      .u32(0xdeadbeef)
      .u64(2n ** 63n)
      .tpm2b(big)
      .zeros(3)
    const out = w.finish()
    expect(out.byteLength).toBe(1 + 2 + 4 + 8 + 2 + 1000 + 3)
    const r = new ByteReader(out)
    expect([r.u8(), r.u16(), r.u32(), r.u64()]).toEqual([1, 0xbeef, 0xdeadbeef, 2n ** 63n])
    expect(r.tpm2b()).toEqual(big)
    expect([...r.bytes(3)]).toEqual([0, 0, 0])
    r.end()
  })

  test('little-endian', () => {
    expect([...new ByteWriter({ littleEndian: true }).u32(0x01020304).finish()]).toEqual([
      4, 3, 2, 1,
    ])
  })

  test('out-of-range values are ERR_TPM_BAD_VALUE, not silently truncated', () => {
    expect(code(() => new ByteWriter().u8(256))).toBe('ERR_TPM_BAD_VALUE')
    expect(code(() => new ByteWriter().u16(-1))).toBe('ERR_TPM_BAD_VALUE')
    expect(code(() => new ByteWriter().u32(2 ** 32))).toBe('ERR_TPM_BAD_VALUE')
    expect(code(() => new ByteWriter().u64(-1n))).toBe('ERR_TPM_BAD_VALUE')
    expect(code(() => new ByteWriter().u16(1.5))).toBe('ERR_TPM_BAD_VALUE')
    expect(code(() => new ByteWriter().tpm2b(new Uint8Array(65536)))).toBe('ERR_TPM_BAD_VALUE')
  })
})
