/**
 * WriteBatcher over an in-memory compare-and-set "table": coalescing, per-row outcomes, key
 * uniqueness and order, bounds, and the per-row fallback on a failed multi-row statement.
 */
import { describe, expect, test } from 'bun:test'
import { type BatchKind, WriteBatcher } from './write-batcher.ts'

interface Row {
  id: string
  /** Written only if the table holds `expect` for `id` (undefined: no entry yet). */
  expect?: number
  value: number
}

/** A compare-and-set kind over a Map, recording every statement it receives. */
function table(
  options: { bad?: (r: Row) => boolean; gate?: () => Promise<void>; down?: boolean } = {},
) {
  const data = new Map<string, number>()
  const statements: { form: 'one' | 'many'; ids: string[] }[] = []
  const apply = (r: Row): boolean => {
    if (options.down)
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
    if (options.bad?.(r)) throw new Error(`bad row ${r.id}`)
    if (data.get(r.id) !== r.expect) return false
    data.set(r.id, r.value)
    return true
  }
  const kind: BatchKind<Row> = {
    name: 'cas',
    key: (r) => r.id,
    async one(r) {
      statements.push({ form: 'one', ids: [r.id] })
      await options.gate?.()
      return apply(r)
    },
    async many(rs) {
      statements.push({ form: 'many', ids: rs.map((r) => r.id) })
      await options.gate?.()
      // All or nothing, like one SQL statement: check every row before changing any.
      for (const r of rs) if (options.bad?.(r) || options.down) apply(r)
      return rs.filter(apply).map((r) => r.id)
    },
  }
  return { data, statements, kind }
}

describe('WriteBatcher', () => {
  test('writes issued in one turn go out as one statement; each caller gets its own outcome', async () => {
    const t = table()
    t.data.set('b', 7)
    const batcher = new WriteBatcher(t.kind)
    const results = await Promise.all([
      batcher.write({ id: 'a', value: 1 }), // new: written
      batcher.write({ id: 'b', value: 2 }), // exists with 7: conflict
      batcher.write({ id: 'c', value: 3 }), // new: written
      batcher.write({ id: 'd', expect: 5, value: 4 }), // stale expectation: not written
    ])
    expect(results).toEqual([true, false, true, false])
    expect(t.statements).toEqual([{ form: 'many', ids: ['a', 'b', 'c', 'd'] }])
    expect(Object.fromEntries(t.data)).toEqual({ a: 1, b: 7, c: 3 })
    expect(batcher.stats).toEqual({ rows: 4, statements: 1, batches: 1, fallbacks: 0 })
  })

  test('a lone write uses the single-row statement', async () => {
    const t = table()
    const batcher = new WriteBatcher(t.kind)
    expect(await batcher.write({ id: 'solo', value: 1 })).toBe(true)
    expect(await batcher.write({ id: 'solo', value: 2 })).toBe(false)
    expect(t.statements.map((s) => s.form)).toEqual(['one', 'one'])
  })

  test('rows are sorted by key inside a statement; a full batch is sent at maxRows', async () => {
    const t = table()
    const batcher = new WriteBatcher(t.kind, { maxRows: 3 })
    const ids = ['e', 'd', 'c', 'b', 'a', 'f', 'g']
    const results = await Promise.all(ids.map((id) => batcher.write({ id, value: 1 })))
    expect(results.every(Boolean)).toBe(true)
    expect(t.statements.map((s) => s.ids)).toEqual([['c', 'd', 'e'], ['a', 'b', 'f'], ['g']])
  })

  test('two rows of one key never share a statement and are applied in order', async () => {
    const t = table()
    const batcher = new WriteBatcher(t.kind)
    const results = await Promise.all([
      batcher.write({ id: 'x', value: 1 }),
      batcher.write({ id: 'x', expect: 1, value: 2 }), // sees the first row's write
      batcher.write({ id: 'y', value: 1 }),
      batcher.write({ id: 'x', expect: 1, value: 3 }), // stale after the second
    ])
    expect(results).toEqual([true, true, true, false])
    expect(t.data.get('x')).toBe(2)
    for (const s of t.statements) expect(new Set(s.ids).size).toBe(s.ids.length)
    expect(t.statements.map((s) => s.ids)).toEqual([['x', 'y'], ['x'], ['x']])
  })

  test('a failed multi-row statement falls back to one statement per row: only the bad row fails', async () => {
    const t = table({ bad: (r) => r.id === 'bad' })
    const batcher = new WriteBatcher(t.kind)
    const results = await Promise.allSettled([
      batcher.write({ id: 'ok1', value: 1 }),
      batcher.write({ id: 'bad', value: 2 }),
      batcher.write({ id: 'ok2', value: 3 }),
    ])
    expect(results[0]).toEqual({ status: 'fulfilled', value: true })
    expect(results[1]!.status).toBe('rejected')
    expect(String((results[1] as PromiseRejectedResult).reason)).toContain('bad row bad')
    expect(results[2]).toEqual({ status: 'fulfilled', value: true })
    expect(Object.fromEntries(t.data)).toEqual({ ok1: 1, ok2: 3 })
    expect(t.statements.map((s) => s.form)).toEqual(['many', 'one', 'one', 'one'])
    expect(batcher.stats.fallbacks).toBe(1)
  })

  test('a multi-row statement failed by an outage is not retried row by row: every caller fails at once', async () => {
    const t = table({ down: true })
    const batcher = new WriteBatcher(t.kind)
    const results = await Promise.allSettled([
      batcher.write({ id: 'a', value: 1 }),
      batcher.write({ id: 'b', value: 2 }),
    ])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    expect(t.statements.map((s) => s.form)).toEqual(['many'])
    expect(batcher.stats.fallbacks).toBe(0)
  })

  test('at the in-flight bound, new rows wait and go out together when a statement ends', async () => {
    let open!: () => void
    let gate: Promise<void> = new Promise((r) => {
      open = r
    })
    const t = table({ gate: () => gate })
    const batcher = new WriteBatcher(t.kind, { maxInFlight: 1 })
    const first = batcher.write({ id: 'a', value: 1 })
    await new Promise((r) => setImmediate(r)) // 'a' is now under way, held by the gate
    const later = ['b', 'c', 'd'].map((id) => batcher.write({ id, value: 1 }))
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
    expect(t.statements.map((s) => s.ids)).toEqual([['a']])
    expect(batcher.pending).toBe(3)
    const release = open
    gate = Promise.resolve()
    release()
    expect(await first).toBe(true)
    expect(await Promise.all(later)).toEqual([true, true, true])
    expect(t.statements.map((s) => s.ids)).toEqual([['a'], ['b', 'c', 'd']])
  })

  test('bounds must be positive integers', () => {
    const t = table()
    expect(() => new WriteBatcher(t.kind, { maxRows: 0 })).toThrow(RangeError)
    expect(() => new WriteBatcher(t.kind, { maxInFlight: 1.5 })).toThrow(RangeError)
  })
})
