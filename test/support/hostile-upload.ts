/**
 * Hostile HTTP clients for the body-limit test and benchmark: raw uploads over a socket (declared
 * or chunked, written with backpressure until the server closes) and the RSS of a process.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'

/** One mebibyte. */
export const MiB = 1024 * 1024

/** VmRSS (or another Vm* line) of `pid` in bytes. */
export function vm(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
    readFileSync(`/proc/${pid}/status`, 'utf8'),
  )
  return Number(m?.[1] ?? 0) * 1024
}

/**
 * One upload of `size` bytes; resolves with the raw response (status line, headers, body) and
 * how much was written before the server closed the connection.
 */
export function upload(
  port: number,
  chunked: boolean,
  size: number,
  sockets: Set<Socket>,
): Promise<{ answer: string; sent: number }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    sockets.add(s)
    let answer = ''
    let sent = 0
    s.on('data', (d) => {
      answer += d.toString('latin1')
      // A whole answer on a connection kept open: done.
      const end = answer.indexOf('\r\n\r\n')
      const length = /content-length: (\d+)/i.exec(answer.slice(0, end))
      if (end > 0 && length && answer.length - end - 4 >= Number(length[1])) s.destroy()
    })
    s.on('error', () => {})
    s.on('close', () => {
      sockets.delete(s)
      resolve({ answer, sent })
    })
    s.write(
      `POST /v2.6/agents/hog HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${
        chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${size}`
      }\r\n\r\n`,
    )
    const piece = Math.min(size, MiB)
    const chunk = Buffer.alloc(piece, 0x61)
    const frame = chunked
      ? Buffer.concat([Buffer.from(`${piece.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
      : chunk
    const pump = () => {
      while (!s.destroyed && sent < size) {
        sent += piece
        if (!s.write(frame)) {
          s.once('drain', pump)
          return
        }
      }
      if (!s.destroyed && chunked) s.write('0\r\n\r\n')
      if (!s.destroyed && !chunked) s.end()
    }
    pump()
  })
}
