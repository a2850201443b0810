/**
 * Connection set-up and its hooks. The TLS judgement (pinned certificate, CAs, host names not
 * checked, refusal before any byte) is tested through the pool in `agent-connections.test.ts`.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import type { TCPSocketListener } from 'bun'
import { type AgentTarget, connectAgent } from './agent-socket.ts'

const listeners: TCPSocketListener<undefined>[] = []
afterAll(() => {
  for (const l of listeners) l.stop(true)
})

/** A TCP listener that accepts and never says a word. */
function silent(): number {
  const l = Bun.listen<undefined>({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  listeners.push(l)
  return l.port
}

/** Opens `t` and counts the hook calls. */
function counted(t: AgentTarget, timeoutMs = 2_000) {
  const calls = { settled: 0, closed: 0 }
  const conn = connectAgent(
    t,
    'key',
    {},
    {
      session: undefined,
      timeoutMs,
      onSettled: () => calls.settled++,
      onClosed: () => calls.closed++,
    },
  )
  return { conn, calls }
}

describe('connectAgent', () => {
  test('plain HTTP: ready once connected; closing calls onClosed once', async () => {
    const { conn, calls } = counted({ ip: '127.0.0.1', port: silent(), https: false })
    await conn.ready
    expect(conn.verify).toBe('plain')
    expect(calls).toEqual({ settled: 1, closed: 0 })
    conn.socket?.terminate()
    await Bun.sleep(20)
    conn.shut(undefined) // idempotent
    expect(calls).toEqual({ settled: 1, closed: 1 })
    expect(conn.closed).toBe(true)
  })

  test('refused: ready rejects, each hook called once', async () => {
    const port = silent()
    listeners.pop()?.stop(true)
    const { conn, calls } = counted({ ip: '127.0.0.1', port, https: false })
    await expect(conn.ready).rejects.toBeDefined()
    expect(calls).toEqual({ settled: 1, closed: 1 })
  })

  test('TCP accepted but no TLS handshake: set-up times out', async () => {
    const { conn, calls } = counted({ ip: '127.0.0.1', port: silent(), https: true }, 150)
    const err = await conn.ready.catch((e: unknown) => e)
    expect((err as Error).message).toBe('timed out during connection set-up')
    expect(calls).toEqual({ settled: 1, closed: 1 })
  })

  test('TLS options Bun cannot use (a garbled pinned certificate) reject ready, never throw', async () => {
    const t = { ip: '127.0.0.1', port: silent(), https: true, pinnedCert: 'not a certificate' }
    const { conn, calls } = counted(t)
    await expect(conn.ready).rejects.toThrow()
    expect(calls).toEqual({ settled: 1, closed: 1 })
  })

  test('the verification mode follows the target and verifyPeer', () => {
    const port = silent()
    const modes = [
      connectAgent({ ip: '127.0.0.1', port, https: true, pinnedCert: 'x' }, 'a', {}, hooks()),
      connectAgent({ ip: '127.0.0.1', port, https: true }, 'b', {}, hooks()),
      connectAgent({ ip: '127.0.0.1', port, https: true }, 'c', { verifyPeer: false }, hooks()),
    ]
    expect(modes.map((c) => c.verify)).toEqual(['pinned', 'ca', 'none'])
    for (const c of modes) c.shut(new Error('done'))
  })
})

function hooks() {
  return { session: undefined, timeoutMs: 1_000, onSettled: () => {}, onClosed: () => {} }
}
