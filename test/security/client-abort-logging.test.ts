/**
 * Issue 17, finding 12: log flooding. On c9aa72c each client that closed its connection in the
 * middle of a request body left an ERROR line "unhandled error in request handler … AbortError"
 * (2,000 slow clients → 2,002 ERROR lines). A client going away is not a server fault: it is
 * logged at DEBUG, and nothing at WARNING or above.
 *
 * 200 clients open a registration on a real registrar listener (127.0.0.1, port 0), send half a
 * body (declared by Content-Length, or chunked) and disconnect.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { type KeylimeDatabase, openDatabase } from '../../src/db/index.ts'
import { type RunningServer, startServer } from '../../src/http/serve.ts'
import { getLogger, setLogLevel, setLogSink } from '../../src/log/logger.ts'
import { registrarTestApp } from '../support/test-registrar.ts'
import { until } from '../support/until.ts'

const CLIENTS = 200
const lines: { level: string; msg: string }[] = []
let restoreSink: ReturnType<typeof setLogSink>
const debugWasOn = getLogger('probe').enabled('DEBUG')
let kdb: KeylimeDatabase
let server: RunningServer

beforeAll(async () => {
  kdb = await openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
  const app = registrarTestApp(kdb)
  const log = getLogger('registrar')
  server = startServer({ name: 'registrar', fetch: app.fetch, hostname: '127.0.0.1', port: 0, log })
  restoreSink = setLogSink((l) => lines.push(JSON.parse(l) as { level: string; msg: string }), true)
  setLogLevel('DEBUG')
})
afterAll(async () => {
  setLogSink(restoreSink)
  if (!debugWasOn) setLogLevel('INFO')
  await server?.stop(0)
  await kdb?.close()
})

/** Sends headers and half a body, then disconnects. */
function abortMidBody(port: number, chunked: boolean): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.on('error', () => {})
    s.on('close', () => resolve())
    s.write(
      `POST /v2.6/agents/quitter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${
        chunked
          ? 'Transfer-Encoding: chunked\r\n\r\n5\r\n{"aik'
          : 'Content-Length: 2000\r\n\r\n{"aik'
      }`,
    )
    setTimeout(() => s.destroy(), 30)
  })
}

describe('clients that disconnect mid-body', () => {
  test(`${CLIENTS} aborts: DEBUG lines only, nothing at WARNING or above`, async () => {
    await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => abortMidBody(server.port, i % 2 === 0)),
    )
    // Every abort is logged once, whatever the level.
    await until(() => lines.length >= CLIENTS, 10_000, `${CLIENTS} log lines`)
    expect(lines.filter((l) => l.level !== 'DEBUG')).toEqual([])
    expect(lines.every((l) => l.msg === 'client closed the connection mid-request')).toBe(true)
  }, 30_000)
})
