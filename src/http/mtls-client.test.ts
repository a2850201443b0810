/**
 * The fetch-based client reads answers under the same limits as the agent pool: a declared length
 * over the cap fails before the body is read, a streamed body stops being read at the cap, and
 * the shared budget is taken and given back.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { ByteBudget } from './byte-budget.ts'
import { AnswerBufferFull, PeerAnswerTooLarge } from './peer-errors.ts'
import { MtlsClient } from './mtls-client.ts'

/** Served chunks of the endless stream so far. */
let pulled = 0
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch(req) {
    const path = new URL(req.url).pathname
    if (path === '/declared') return new Response('x'.repeat(2_000_000))
    if (path === '/endless') {
      const chunk = new Uint8Array(64 * 1024).fill(120)
      return new Response(
        new ReadableStream({
          pull(c) {
            pulled++
            c.enqueue(chunk)
          },
        }),
      )
    }
    return Response.json({ results: { x: 'y'.repeat(300_000) } })
  },
})
afterAll(() => server.stop(true))
const url = (path: string) => `http://127.0.0.1:${server.port}${path}`

describe('MtlsClient answer limits', () => {
  test('a declared length over the cap fails without reading the body', async () => {
    const err = await new MtlsClient({ maxResponseBytes: 1_000_000 })
      .request(url('/declared'))
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerAnswerTooLarge)
  })

  test('an endless chunked body stops being read at the cap', async () => {
    const err = await new MtlsClient({ maxResponseBytes: 1_000_000 })
      .request(url('/endless'))
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerAnswerTooLarge)
    const after = pulled
    expect(after).toBeLessThan(200) // 1 MB in 64 KiB chunks, plus what was in flight
    // The server may still fill the loopback socket buffers (a few MB) until it sees the close;
    // after that nothing more is pulled. A client still reading would pull ~1 GB/s here.
    await Bun.sleep(300)
    const settled = pulled
    await Bun.sleep(300)
    expect(settled - after).toBeLessThan(100)
    expect(pulled - settled).toBeLessThan(2)
  })

  test('the shared budget is taken while reading and given back', async () => {
    const budget = new ByteBudget(100_000)
    const err = await new MtlsClient({ budget }).request(url('/json')).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AnswerBufferFull)
    expect(budget.used).toBe(0)
    const roomy = new ByteBudget(1_000_000)
    const r = await new MtlsClient({ budget: roomy }).request(url('/json'))
    expect((r.results as { x: string }).x).toHaveLength(300_000)
    expect(roomy.used).toBe(0)
  })
})
