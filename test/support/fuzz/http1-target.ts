/**
 * Fuzz seeds and target of the HTTP/1.1 response reader, shared by
 * `http1-response-reader.test.ts` (5,000 cases) and `bench/fuzz-http1.ts` (1,000,000).
 *
 * @module
 */
import { Prng } from './fuzz-parser.ts'
import { BodyLimitError, BoundedBody } from '../../../src/http/bounded-body.ts'
import {
  Http1Error,
  type Http1Response,
  Http1ResponseReader,
} from '../../../src/http/agent-client/http1-response-reader.ts'

const head = (extra: string, status = '200 OK') =>
  `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\n${extra}`

/** Answers in every framing the reader knows (plain Uint8Arrays: `mutate` slices its seeds). */
export function http1FuzzSeeds(): Uint8Array[] {
  return [
    `${head('Content-Length: 11\r\n\r\n')}hello world`,
    `${head('Transfer-Encoding: chunked\r\n\r\n')}b\r\n{"results":\r\n5\r\n{"a":\r\n3\r\n1}}\r\n0\r\nTrailer-A: x\r\n\r\n`,
    `${head('Transfer-Encoding: chunked\r\n\r\n')}1;e="a b"\r\nx\r\n0\r\n\r\n`,
    `HTTP/1.1 100 Continue\r\n\r\n${head('Content-Length: 1\r\n\r\n')}z`,
    `${head('\r\n')}to the close`,
    `${head('Content-Length: 3\r\n\r\n', '204 No Content')}`,
  ].map((s) => new Uint8Array(Buffer.from(s, 'latin1')))
}

/** Feeds `bytes` in pieces of 1–16 bytes (drawn from the input) under small limits. */
export function readHttp1InPieces(bytes: Uint8Array): Http1Response {
  const rng = new Prng(bytes.byteLength * 7919 + (bytes[0] ?? 0))
  const reader = new Http1ResponseReader(new BoundedBody({ maxBytes: 4096 }), {
    maxHeadBytes: 512,
    maxHeaders: 8,
  })
  for (let p = 0; p < bytes.byteLength;) {
    const n = 1 + rng.int(16)
    const r = reader.push(bytes.subarray(p, p + n))
    if (r !== undefined) return r
    p += n
  }
  return reader.end()
}

/** The errors the reader may throw. */
export function isHttp1TypedError(e: unknown): boolean {
  return e instanceof Http1Error || e instanceof BodyLimitError
}
