/**
 * A TCP proxy on 127.0.0.1 that tests put between a process and a server (PostgreSQL) to stage
 * outages without touching the server, which other suites share:
 *
 * - `blackhole()`: a partition or a dead host. Nothing more is forwarded on open connections,
 *   which stay open and silent (the client's kernel sees its bytes acknowledged, no answer, no
 *   reset), and new connections are accepted and held silent the same way. They stay so after
 *   `heal()`, as connections to a host that died would.
 * - `refuse()`: a stopped server. Open connections are reset and the port refuses new ones.
 * - `heal()`: new connections are forwarded again.
 *
 * @module
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

interface Pair {
  client: Socket
  upstream: Socket | undefined
  /** Black-holed: nothing is forwarded any more, in either direction. */
  dead: boolean
}

/** A running proxy. */
export interface TcpProxy {
  /** The port it listens on (127.0.0.1). */
  readonly port: number
  /** Connections accepted so far. */
  readonly accepted: number
  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string
  /** Stops forwarding on every connection, open and new. */
  blackhole(): void
  /** Resets every connection and stops listening (connections are refused). */
  refuse(): Promise<void>
  /** Forwards new connections again (listening again after `refuse`). */
  heal(): Promise<void>
  /** Closes everything. */
  close(): Promise<void>
}

/** Starts a proxy to `target` (`host:port`) on a free port of 127.0.0.1. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>()
  let mode: 'forward' | 'blackhole' | 'refuse' = 'forward'
  let accepted = 0

  const onConnection = (client: Socket) => {
    accepted++
    const pair: Pair = { client, upstream: undefined, dead: mode !== 'forward' }
    pairs.add(pair)
    client.on('error', () => {})
    client.on('close', () => {
      pairs.delete(pair)
      pair.upstream?.destroy()
    })
    if (pair.dead) {
      client.on('data', () => {}) // read and drop, so the client's writes are acknowledged
      return
    }
    const upstream = connect(target)
    pair.upstream = upstream
    upstream.on('error', () => client.destroy())
    upstream.on('close', () => {
      if (!pair.dead) client.destroy()
    })
    upstream.on('data', (chunk) => {
      if (!pair.dead) client.write(chunk)
    })
    client.on('data', (chunk) => {
      if (!pair.dead) upstream.write(chunk)
    })
  }

  let server: Server = createServer(onConnection)
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        const addr = server.address()
        resolve(typeof addr === 'object' && addr !== null ? addr.port : port)
      })
    })
  const stopListening = () => new Promise<void>((resolve) => server.close(() => resolve()))
  const port = await listen(0)

  return {
    port,
    get accepted() {
      return accepted
    },
    url(url: string) {
      const u = new URL(url)
      u.hostname = '127.0.0.1'
      u.port = String(port)
      return u.toString()
    },
    blackhole() {
      mode = 'blackhole'
      for (const p of pairs) {
        p.dead = true
        // the upstream side is let go quietly; the client side is held open
        p.upstream?.removeAllListeners('close')
        p.upstream?.destroy()
      }
    },
    async refuse() {
      mode = 'refuse'
      for (const p of pairs) {
        p.dead = true
        p.client.resetAndDestroy()
        p.upstream?.destroy()
      }
      await stopListening()
    },
    async heal() {
      if (mode === 'refuse') {
        server = createServer(onConnection)
        await listen(port)
      }
      mode = 'forward'
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy()
        p.upstream?.destroy()
      }
      if (server.listening) await stopListening()
    },
  }
}
