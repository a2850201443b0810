/**
 * One request and its answer on a plain agent connection: the bytes written, the answer and its
 * keep-alive, the retry signal for a reused connection that died, and the deadline hook.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import type { Socket, TCPSocketListener } from 'bun'
import { PeerBadResponse, PeerUnreachable } from '../peer-errors.ts'
import { type AgentConn, type AgentTarget, connectAgent } from './agent-socket.ts'
import { exchangeRequest, RetryOnFresh, urlOf } from './exchange-request.ts'

const listeners: TCPSocketListener<undefined>[] = []
afterAll(() => {
  for (const l of listeners) l.stop(true)
})

/** A listener that records what it received and lets `onData` answer. */
function listen(onData: (s: Socket<undefined>, got: string) => void): {
  target: AgentTarget
  received: string[]
} {
  const received: string[] = []
  const l = Bun.listen<undefined>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data(s, chunk) {
        received.push(chunk.toString('latin1'))
        onData(s, chunk.toString('latin1'))
      },
    },
  })
  listeners.push(l)
  return { target: { ip: '127.0.0.1', port: l.port, https: false }, received }
}

async function open(t: AgentTarget): Promise<AgentConn> {
  const conn = connectAgent(
    t,
    'k',
    {},
    {
      session: undefined,
      timeoutMs: 2_000,
      onSettled: () => undefined,
      onClosed: () => undefined,
    },
  )
  await conn.ready
  return conn
}

const limits = { timeoutMs: 2_000, maxBytes: 1024 * 1024, budget: undefined }
const answer = (body: string, extra = '') =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`

describe('exchangeRequest', () => {
  test('GET: request line, Host, Accept and nothing else; the answer parsed and kept alive', async () => {
    const { target, received } = listen((s) => s.write(answer('{"results": {"a": 1}}')))
    const conn = await open(target)
    const r = await exchangeRequest(conn, target, { path: '/v2.2/quotes/integrity?n=1' }, limits)
    expect(received.join('')).toBe(
      `GET /v2.2/quotes/integrity?n=1 HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\n` +
        'Accept: application/json\r\n\r\n',
    )
    expect(r).toEqual({
      res: { status: 200, body: { results: { a: 1 } }, results: { a: 1 } },
      keepAlive: true,
    })
    conn.socket?.terminate()
  })

  test('POST: a JSON body with its type and byte length', async () => {
    const { target, received } = listen((s) => s.write(answer('')))
    const conn = await open(target)
    const r = await exchangeRequest(
      conn,
      target,
      { method: 'POST', path: '/v2.2/keys/vkey', json: { k: 'é' } },
      limits,
    )
    expect(received.join('')).toEndWith(
      'Content-Type: application/json\r\nContent-Length: 10\r\n\r\n{"k":"\u00c3\u00a9"}',
    )
    expect(r.res).toEqual({ status: 200, body: null, results: null })
    conn.socket?.terminate()
  })

  test('Connection: close in the answer: not kept alive', async () => {
    const { target } = listen((s) => s.write(answer('{}', 'Connection: close\r\n')))
    const conn = await open(target)
    expect((await exchangeRequest(conn, target, { path: '/' }, limits)).keepAlive).toBe(false)
  })

  test('closed before any answer byte: RetryOnFresh on a reused connection, PeerUnreachable on a fresh one', async () => {
    const { target } = listen((s) => s.end())
    const fresh = await open(target)
    const e1 = await exchangeRequest(fresh, target, { path: '/' }, limits).catch((e: unknown) => e)
    expect(e1).toBeInstanceOf(PeerUnreachable)
    const reused = await open(target)
    reused.used = 1
    const e2 = await exchangeRequest(reused, target, { path: '/x' }, limits).catch(
      (e: unknown) => e,
    )
    expect(e2).toBeInstanceOf(RetryOnFresh)
    expect((e2 as RetryOnFresh).toUnreachable()).toBeInstanceOf(PeerUnreachable)
    expect((e2 as RetryOnFresh).url).toBe(`http://127.0.0.1:${target.port}/x`)
  })

  test('a started answer cut off is PeerUnreachable; garbage is PeerBadResponse', async () => {
    const cut = listen((s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc')
      s.end()
    })
    const c1 = await open(cut.target)
    c1.used = 1 // even on a reused connection: bytes arrived, so no retry
    await expect(exchangeRequest(c1, cut.target, { path: '/' }, limits)).rejects.toBeInstanceOf(
      PeerUnreachable,
    )
    const junk = listen((s) => s.write('not http\r\n\r\n'))
    const c2 = await open(junk.target)
    await expect(exchangeRequest(c2, junk.target, { path: '/' }, limits)).rejects.toBeInstanceOf(
      PeerBadResponse,
    )
  })

  test('the deadline is set for the sweep, and onTimeout fails the request', async () => {
    const { target } = listen(() => undefined)
    const conn = await open(target)
    const before = performance.now()
    const p = exchangeRequest(conn, target, { path: '/' }, limits).catch((e: unknown) => e)
    expect(conn.deadline).toBeGreaterThanOrEqual(before + limits.timeoutMs)
    conn.onTimeout?.()
    const err = await p
    expect(err).toBeInstanceOf(PeerUnreachable)
    expect((err as Error).message).toContain('timed out')
  })

  test('urlOf brackets IPv6 literals', () => {
    expect(urlOf({ ip: '::1', port: 9002, https: true }, '/v')).toBe('https://[::1]:9002/v')
  })
})
