import { describe, expect, test } from 'bun:test'
import { caseSeed, fuzzParser, mutate } from '../../../test/support/fuzz/fuzz-parser.ts'
import { BodyLimitError, BoundedBody } from '../bounded-body.ts'
import { ByteBudget } from '../byte-budget.ts'
import {
  http1FuzzSeeds,
  isHttp1TypedError,
  readHttp1InPieces,
} from '../../../test/support/fuzz/http1-target.ts'
import { Http1Error, type Http1Response, Http1ResponseReader } from './http1-response-reader.ts'

const MB = 1024 * 1024

/** Reads `wire` fed in the given pieces; `close` ends the connection after the last one. */
function read(
  pieces: (string | Uint8Array)[],
  o: { close?: boolean; maxBytes?: number; budget?: ByteBudget } = {},
): Http1Response {
  const reader = new Http1ResponseReader(
    new BoundedBody({ maxBytes: o.maxBytes ?? 64 * MB, budget: o.budget }),
  )
  for (const p of pieces) {
    const r = reader.push(typeof p === 'string' ? Buffer.from(p, 'latin1') : p)
    if (r !== undefined) return r
  }
  if (o.close) return reader.end()
  throw new Error('incomplete')
}

function errorOf(fn: () => unknown): unknown {
  try {
    fn()
  } catch (e) {
    return e
  }
  return undefined
}

function codeOf(pieces: string[], close = true, maxBytes?: number): string {
  const e = errorOf(() => read(pieces, { close, maxBytes }))
  expect(e instanceof Http1Error || e instanceof BodyLimitError).toBe(true)
  return (e as Http1Error).code
}

const head = (extra = '', status = '200 OK', version = '1.1') =>
  `HTTP/${version} ${status}\r\nContent-Type: application/json\r\n${extra}`

const chunked = (parts: string[], trailer = '') =>
  head('Transfer-Encoding: chunked\r\n\r\n') +
  parts.map((p) => `${p.length.toString(16)}\r\n${p}\r\n`).join('') +
  `0\r\n${trailer}\r\n`

describe('Http1ResponseReader: well-formed answers', () => {
  test('Content-Length body; kept alive unless more bytes follow or the peer says close', () => {
    const ok = `${head('Content-Length: 5\r\n\r\n')}hello`
    const r = read([ok])
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe('hello')
    expect(r.keepAlive).toBe(true)
    expect(read([`${ok}HTTP/1.1`]).keepAlive).toBe(false)
    expect(
      read([`${head('Connection: keep-alive, close\r\nContent-Length: 0\r\n\r\n')}`]).keepAlive,
    ).toBe(false)
    expect(read([`${head('Content-Length: 2\r\n\r\n', '200 OK', '1.0')}ok`]).keepAlive).toBe(false)
  })

  test('chunked body with extensions and trailers', () => {
    const wire =
      head('Transfer-Encoding: Chunked\r\n\r\n') +
      '3;name=value;q="a;b"\r\nabc\r\n0002 \r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n'
    const r = read([wire])
    expect(r.body.toString()).toBe('abcde')
    expect(r.keepAlive).toBe(true)
  })

  test('no length and no chunking: the body runs to the close, not kept alive', () => {
    const r = read([`${head('\r\n')}abc`, 'def'], { close: true })
    expect(r.body.toString()).toBe('abcdef')
    expect(r.keepAlive).toBe(false)
  })

  test('204 and 304 have no body; interim 1xx answers are skipped', () => {
    expect(read([head('Content-Length: 10\r\n\r\n', '204 No Content')]).body.byteLength).toBe(0)
    expect(read([head('Transfer-Encoding: chunked\r\n\r\n', '304 Not Modified')]).keepAlive).toBe(
      true,
    )
    const r = read([
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n',
      `${head('Content-Length: 2\r\n\r\n', '201 Created')}{}`,
    ])
    expect(r.status).toBe(201)
    expect(r.body.toString()).toBe('{}')
  })

  test('a repeated Content-Length with the same value is one length', () => {
    expect(
      read([`${head('Content-Length: 2\r\nContent-Length: 2, 02\r\n\r\n')}ok`]).body.toString(),
    ).toBe('ok')
  })

  test('split at every byte, and fed a byte at a time, gives the same answer', () => {
    const answers = [
      `${head('Content-Length: 11\r\n\r\n')}hello world`,
      chunked(['{"results":', '{"a":', '1}}'], 'Trailer-A: x\r\n'),
      `${head('Transfer-Encoding: chunked\r\n\r\n')}1;e=1\r\nx\r\n0;last\r\n\r\n`,
      `HTTP/1.1 100 Continue\r\n\r\n${head('Content-Length: 1\r\n\r\n')}z`,
    ]
    for (const wire of answers) {
      const whole = read([wire])
      for (let i = 0; i <= wire.length; i++) {
        const r = read([wire.slice(0, i), wire.slice(i)])
        expect(r.status).toBe(whole.status)
        expect(r.body.toString()).toBe(whole.body.toString())
      }
      expect(read(wire.split('')).body.toString()).toBe(whole.body.toString())
    }
    const toClose = `${head('\r\n')}until the close`
    for (let i = 0; i <= toClose.length; i++) {
      const r = read([toClose.slice(0, i), toClose.slice(i)], { close: true })
      expect(r.body.toString()).toBe('until the close')
    }
  })
})

describe('Http1ResponseReader: malformed framing is a typed error', () => {
  test.each([
    ['not HTTP', ['SSH-2.0-OpenSSH\r\n\r\n'], 'ERR_HTTP1_STATUS_LINE'],
    ['HTTP/2 status line', ['HTTP/2 200\r\n\r\n'], 'ERR_HTTP1_STATUS_LINE'],
    ['status 600', ['HTTP/1.1 600 X\r\n\r\n'], 'ERR_HTTP1_STATUS_LINE'],
    ['bare LF', ['HTTP/1.1 200 OK\nContent-Length: 0\n\n'], 'ERR_HTTP1_MISSING_CRLF'],
    ['no colon', [head('Content-Length 5\r\n\r\n')], 'ERR_HTTP1_HEADER'],
    ['space before colon', [head('Content-Length : 5\r\n\r\n')], 'ERR_HTTP1_HEADER'],
    ['obs-fold', [head('X-A: 1\r\n  2\r\n\r\n')], 'ERR_HTTP1_HEADER'],
    ['bare CR in a value', [head('X-A: 1\r2\r\n\r\n')], 'ERR_HTTP1_HEADER'],
    ['NUL in a value', [head('X-A: 1\u00002\r\n\r\n')], 'ERR_HTTP1_HEADER'],
    [
      'Content-Length not digits',
      [head('Content-Length: abc\r\n\r\n')],
      'ERR_HTTP1_CONTENT_LENGTH',
    ],
    ['negative Content-Length', [head('Content-Length: -1\r\n\r\n')], 'ERR_HTTP1_CONTENT_LENGTH'],
    ['NaN Content-Length', [head('Content-Length: NaN\r\n\r\n')], 'ERR_HTTP1_CONTENT_LENGTH'],
    ['fraction', [head('Content-Length: 1.5\r\n\r\n')], 'ERR_HTTP1_CONTENT_LENGTH'],
    ['exponent', [head('Content-Length: 1e3\r\n\r\n')], 'ERR_HTTP1_CONTENT_LENGTH'],
    ['empty', [head('Content-Length: \r\n\r\n')], 'ERR_HTTP1_CONTENT_LENGTH'],
    [
      'overflowing Content-Length',
      [head('Content-Length: 99999999999999999999\r\n\r\n')],
      'ERR_HTTP1_CONTENT_LENGTH',
    ],
    [
      'two Content-Length values',
      [head('Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!')],
      'ERR_HTTP1_CONTENT_LENGTH',
    ],
    ['listed values differ', [head('Content-Length: 5, 6\r\n\r\n')], 'ERR_HTTP1_CONTENT_LENGTH'],
    [
      'Content-Length with Transfer-Encoding',
      [head('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n')],
      'ERR_HTTP1_TRANSFER_ENCODING',
    ],
    [
      'gzip coding',
      [head('Transfer-Encoding: gzip, chunked\r\n\r\n')],
      'ERR_HTTP1_TRANSFER_ENCODING',
    ],
    [
      'chunked twice',
      [head('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n')],
      'ERR_HTTP1_TRANSFER_ENCODING',
    ],
    [
      'chunked in HTTP/1.0',
      [head('Transfer-Encoding: chunked\r\n\r\n', '200 OK', '1.0')],
      'ERR_HTTP1_TRANSFER_ENCODING',
    ],
    [
      'chunk size not hex',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}g\r\n`],
      'ERR_HTTP1_CHUNK_SIZE',
    ],
    [
      'negative chunk size',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}-1\r\n`],
      'ERR_HTTP1_CHUNK_SIZE',
    ],
    [
      'empty chunk size',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}\r\n`],
      'ERR_HTTP1_CHUNK_SIZE',
    ],
    [
      '0x prefix',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}0x10\r\n`],
      'ERR_HTTP1_CHUNK_SIZE',
    ],
    [
      'leading space',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')} 5\r\n`],
      'ERR_HTTP1_CHUNK_SIZE',
    ],
    [
      'overflowing chunk size',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}fffffffffffffff\r\n`],
      'ERR_HTTP1_CHUNK_SIZE',
    ],
    [
      'control byte in an extension',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}1;a\u0001\r\nx\r\n`],
      'ERR_HTTP1_CHUNK_SIZE',
    ],
    [
      'chunk-size line too long',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}1;${'a'.repeat(5000)}\r\n`],
      'ERR_HTTP1_CHUNK_SIZE',
    ],
    [
      'chunk data without CRLF',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}2\r\nabX\r\n0\r\n\r\n`],
      'ERR_HTTP1_MISSING_CRLF',
    ],
    [
      'chunk-size line ended by LF',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}2\nab\r\n`],
      'ERR_HTTP1_MISSING_CRLF',
    ],
    [
      'malformed trailer',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}0\r\nnot a field\r\n\r\n`],
      'ERR_HTTP1_TRAILERS',
    ],
    ['101 Switching Protocols', ['HTTP/1.1 101 Switching\r\n\r\n'], 'ERR_HTTP1_UNEXPECTED_STATUS'],
    ['endless 1xx', ['HTTP/1.1 100 Continue\r\n\r\n'.repeat(9)], 'ERR_HTTP1_UNEXPECTED_STATUS'],
    ['closed in the head', ['HTTP/1.1 200 OK\r\nContent-Le'], 'ERR_HTTP1_TRUNCATED'],
    ['closed in the body', [`${head('Content-Length: 5\r\n\r\n')}hel`], 'ERR_HTTP1_TRUNCATED'],
    [
      'closed in a chunk',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}5\r\nhel`],
      'ERR_HTTP1_TRUNCATED',
    ],
    [
      'closed before the trailers end',
      [`${head('Transfer-Encoding: chunked\r\n\r\n')}0\r\n`],
      'ERR_HTTP1_TRUNCATED',
    ],
  ])('%s', (_name, pieces, code) => {
    expect(codeOf(pieces)).toBe(code)
  })

  test('a head over 64 KiB, or with too many headers, is refused without waiting for its end', () => {
    expect(codeOf([`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}`], false)).toBe(
      'ERR_HTTP1_HEAD_TOO_LARGE',
    )
    const many = Array.from({ length: 101 }, (_, i) => `X-${i}: 1\r\n`).join('')
    expect(codeOf([head(many)], false)).toBe('ERR_HTTP1_TOO_MANY_HEADERS')
    const trailers = Array.from({ length: 101 }, (_, i) => `T-${i}: 1\r\n`).join('')
    expect(codeOf([`${head('Transfer-Encoding: chunked\r\n\r\n')}0\r\n${trailers}`], false)).toBe(
      'ERR_HTTP1_TOO_MANY_HEADERS',
    )
    expect(
      codeOf([`${head('Transfer-Encoding: chunked\r\n\r\n')}0\r\nT: ${'a'.repeat(70_000)}`], false),
    ).toBe('ERR_HTTP1_TRAILERS')
  })
})

describe('Http1ResponseReader: limits', () => {
  test('a declared length over the cap fails at the head, before the body arrives', () => {
    expect(codeOf([head('Content-Length: 1000001\r\n\r\n')], false, 1_000_000)).toBe(
      'ERR_ANSWER_TOO_LARGE',
    )
    expect(
      codeOf([`${head('Transfer-Encoding: chunked\r\n\r\n')}F4241\r\n`], false, 1_000_000),
    ).toBe('ERR_ANSWER_TOO_LARGE')
  })

  test('every byte counts: many small chunks, framing or a body to the close pass the cap', () => {
    const small = chunked(Array.from({ length: 2000 }, () => 'x'))
    expect(codeOf([small], false, 10_000)).toBe('ERR_ANSWER_TOO_LARGE')
    const exts = `${head('Transfer-Encoding: chunked\r\n\r\n')}${`1;${'e'.repeat(4000)}\r\nx\r\n`.repeat(4)}`
    expect(codeOf([exts], false, 10_000)).toBe('ERR_ANSWER_TOO_LARGE')
    expect(codeOf([head('\r\n'), 'x'.repeat(10_000)], false, 10_000)).toBe('ERR_ANSWER_TOO_LARGE')
  })

  test('the shared budget: bytes past the free allowance are taken, and given back on release', () => {
    const budget = new ByteBudget(250_000)
    const body = (n: number) => `${head(`Content-Length: ${n}\r\n\r\n`)}${'x'.repeat(n)}`
    const first = new BoundedBody({ maxBytes: MB, budget })
    new Http1ResponseReader(first).push(Buffer.from(body(200_000)))
    expect(budget.used).toBeGreaterThan(100_000)
    // a second large answer does not fit beside it...
    const e = errorOf(() =>
      new Http1ResponseReader(new BoundedBody({ maxBytes: MB, budget })).push(
        Buffer.from(body(200_000)),
      ),
    )
    expect((e as BodyLimitError).code).toBe('ERR_ANSWER_BUDGET_EXHAUSTED')
    // ...but small answers always do
    for (let i = 0; i < 100; i++) expect(read([body(1000)], { budget }).status).toBe(200)
    first.release()
    first.release()
    expect(budget.used).toBe(0)
    expect(read([body(200_000)], { budget }).body.byteLength).toBe(200_000)
  })
})

describe('Http1ResponseReader: fuzzing', () => {
  const seeds = http1FuzzSeeds()

  test('5000 mutated answers, each fed in random pieces, give an answer or a typed error', () => {
    const report = fuzzParser('HTTP/1 response', seeds, readHttp1InPieces, {
      cases: 5000,
      seed: 20260801,
      isTypedError: isHttp1TypedError,
    })
    expect(report.failures).toEqual([])
    expect(report.accepted).toBeGreaterThan(100)
    expect(report.rejected).toBeGreaterThan(1000)
  })

  test('a mutated answer reads the same whole and split at every byte', () => {
    for (let i = 0; i < 200; i++) {
      const wire = mutate(seeds, caseSeed(7, i))
      const outcome = (pieces: Uint8Array[]) => {
        try {
          const r = read(pieces, { close: true, maxBytes: 4096 })
          return `${r.status}:${r.body.toString('hex')}`
        } catch (e) {
          return (e as Http1Error).code
        }
      }
      const whole = outcome([wire])
      for (let k = 0; k <= wire.byteLength; k++) {
        expect(outcome([wire.subarray(0, k), wire.subarray(k)])).toBe(whole)
      }
    }
  })
})
