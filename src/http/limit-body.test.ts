/** The body-read bound and the body middleware, through `app.request()`. */
import { describe, expect, test } from 'bun:test'
import { Hono } from 'hono'
import { ClientAborted, UploadsBusy } from './body-errors.ts'
import { BodyReadLimiter } from './body-read-limiter.ts'
import type { Envelope } from './envelope.ts'
import { limitBody, serverBodyCeiling } from './limit-body.ts'

const enc = new TextEncoder()

/** A body stream that sends `chunks` pieces of `size` bytes, `gapMs` apart, then ends (or not). */
function trickle(chunks: number, size: number, gapMs: number, end = true): ReadableStream {
  let sent = 0
  return new ReadableStream({
    async pull(c) {
      if (sent === chunks) {
        if (end) c.close()
        else await Bun.sleep(60_000)
        return
      }
      await Bun.sleep(gapMs)
      c.enqueue(enc.encode('x'.repeat(size)))
      sent++
    },
  })
}

function app(limiter: BodyReadLimiter, maxSize = 1000, readTimeoutMs?: number) {
  const a = new Hono()
  a.use('*', limitBody({ maxSize, limiter, readTimeoutMs }))
  a.post('/echo', async (c) => c.text(String((await c.req.arrayBuffer()).byteLength)))
  return a
}

const post = (a: Hono, body: string | ReadableStream, headers: Record<string, string> = {}) =>
  a.request('/echo', { method: 'POST', body, headers, duplex: 'half' } as RequestInit)

describe('BodyReadLimiter', () => {
  test('at most maxConcurrent at once; waiters served in arrival order', async () => {
    const l = new BodyReadLimiter({ maxConcurrent: 2 })
    const order: number[] = []
    const r1 = await l.acquire()
    const r2 = await l.acquire()
    const waiting = [3, 4].map((n) =>
      l.acquire().then((r) => {
        order.push(n)
        return r
      }),
    )
    expect([l.active, l.waiting]).toEqual([2, 2])
    r1()
    r1() // a second release of the same slot changes nothing
    const r3 = await waiting[0]!
    expect([l.active, l.waiting]).toEqual([2, 1])
    r2()
    const r4 = await waiting[1]!
    expect(order).toEqual([3, 4])
    r3()
    r4()
    expect([l.active, l.waiting]).toEqual([0, 0])
  })

  test('a wait past maxWaitMs → UploadsBusy; an abort while waiting → ClientAborted', async () => {
    const l = new BodyReadLimiter({ maxConcurrent: 1, maxWaitMs: 30 })
    const held = await l.acquire()
    await expect(l.acquire()).rejects.toBeInstanceOf(UploadsBusy)
    const ctl = new AbortController()
    const gone = l.acquire(ctl.signal)
    ctl.abort()
    await expect(gone).rejects.toBeInstanceOf(ClientAborted)
    expect(l.waiting).toBe(0)
    held()
    expect(l.active).toBe(0)
  })
})

describe('limitBody', () => {
  test('a body within the cap reaches the handler whole', async () => {
    const res = await post(app(new BodyReadLimiter()), 'y'.repeat(1000))
    expect(await res.text()).toBe('1000')
  })

  test('declared, counted (chunked) and lying sizes over the cap → 413 envelope', async () => {
    const a = app(new BodyReadLimiter())
    const expected = {
      code: 413,
      status: 'Request body exceeds the maximum upload size of 1000 bytes',
      results: {},
    }
    // Modestly oversized bodies are read to their end (and dropped): the connection stays usable.
    for (const res of [
      await post(a, 'y'.repeat(1001)),
      await post(a, trickle(5, 300, 0)),
      await post(a, trickle(5, 300, 0), { 'content-length': '10' }),
    ]) {
      expect(res.status).toBe(413)
      expect(res.headers.get('connection')).toBeNull()
      expect((await res.json()) as Envelope).toEqual(expected)
    }
    // Far larger ones are cut off: refused unread when declared, after a bounded drain otherwise.
    for (const res of [
      await post(a, 'y', { 'content-length': String(2 * 1024 * 1024) }),
      await post(a, trickle(40, 64 * 1024, 0)),
    ]) {
      expect(res.status).toBe(413)
      expect(res.headers.get('connection')).toBe('close')
      expect((await res.json()) as Envelope).toEqual(expected)
    }
  })

  test('reads beyond the bound wait for a slot; the slot is held only while bytes arrive', async () => {
    const l = new BodyReadLimiter({ maxConcurrent: 1 })
    const a = app(l)
    const slow = post(a, trickle(3, 10, 40))
    await Bun.sleep(10)
    expect(l.active).toBe(1)
    const fast = post(a, 'z'.repeat(5))
    await Bun.sleep(10)
    expect(l.waiting).toBe(1)
    expect(await (await slow).text()).toBe('30')
    expect(await (await fast).text()).toBe('5')
    expect([l.active, l.waiting]).toEqual([0, 0])
  })

  test('no slot within the wait → 503; a body slower than the deadline → 408', async () => {
    const l = new BodyReadLimiter({ maxConcurrent: 1, maxWaitMs: 50 })
    const held = await l.acquire()
    const busy = await post(app(l), 'z')
    expect(busy.status).toBe(503)
    expect(busy.headers.get('connection')).toBe('close')
    held()
    const started = performance.now()
    const stalled = await post(app(l, 1000, 100), trickle(1, 10, 0, false))
    expect(stalled.status).toBe(408)
    expect(performance.now() - started).toBeLessThan(2000)
    expect(l.active).toBe(0)
  })

  test('Bun’s own ceiling never undercuts the app’s cap', () => {
    expect(serverBodyCeiling(65_536)).toBeGreaterThan(65_536)
    expect(serverBodyCeiling(104_857_600)).toBeGreaterThan(104_857_600)
  })
})
