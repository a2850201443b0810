import { describe, expect, test } from 'bun:test'
import { BoundedCache } from './bounded-cache.ts'

describe('BoundedCache', () => {
  test('keeps at most maxEntries, dropping the oldest', () => {
    const c = new BoundedCache<number>({ maxEntries: 3, maxBytes: 1000 })
    for (const k of ['a', 'b', 'c', 'd']) c.set(k, k.charCodeAt(0))
    expect(c.size).toBe(3)
    expect(c.get('a')).toBeUndefined()
    expect(c.get('d')).toBe(100)
  })

  test('keeps at most maxBytes of keys and values, whatever their number', () => {
    const c = new BoundedCache<Uint8Array>({
      maxEntries: 65_536,
      maxBytes: 1_000_000,
      sizeOf: (v) => v.byteLength,
    })
    // distinct 100 KB keys (a PEM wrapped in junk): the byte bound holds, not the count
    for (let i = 0; i < 1000; i++) c.set(`${i}:${'j'.repeat(100_000)}`, new Uint8Array(32))
    expect(c.bytes).toBeLessThanOrEqual(1_000_000)
    expect(c.size).toBeLessThanOrEqual(10)
    for (let i = 0; i < 1000; i++) c.set(`key ${i}`, new Uint8Array(1000))
    expect(c.bytes).toBeLessThanOrEqual(1_000_000)
    expect(c.get('key 999')?.byteLength).toBe(1000)
  })

  test('an entry over an eighth of the byte bound is not cached and evicts nothing', () => {
    const c = new BoundedCache<number>({ maxEntries: 10, maxBytes: 800 })
    c.set('small', 1)
    c.set('x'.repeat(101), 2)
    expect(c.get('x'.repeat(101))).toBeUndefined()
    expect(c.get('small')).toBe(1)
    c.set('small', 3)
    expect(c.size).toBe(1)
    expect(c.bytes).toBe(5)
    c.clear()
    expect(c.bytes).toBe(0)
  })
})
