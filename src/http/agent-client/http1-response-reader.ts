/**
 * An incremental HTTP/1.1 response reader (RFC 9112) for answers from peers we do not trust:
 * bytes are fed as they arrive, each byte is looked at once, and the body is collected by a
 * {@link BoundedBody} (cap, process budget, one join at the end). Every malformed framing is an
 * {@link Http1Error} with a stable code; limits are `BodyLimitError`s from the body.
 *
 * Strict where a lenient reader would let a peer smuggle or stall: CRLF line ends only, no
 * obs-fold, `Content-Length` digits only (a repeated or listed value must be the same),
 * `Transfer-Encoding` only `chunked` and never with `Content-Length`, chunk sizes in at most 13 hex
 * digits. Interim 1xx answers are skipped (RFC 9110 §15.2); 204 and 304 have no body; an answer
 * with neither length nor chunking runs to the close and is not kept alive.
 *
 * @module
 */
import { KeylimeError } from '../../errors.ts'
import type { BoundedBody } from '../bounded-body.ts'

/** Stable codes of {@link Http1Error}. */
export type Http1ErrorCode =
  /** Not an `HTTP/1.x NNN` status line. */
  | 'ERR_HTTP1_STATUS_LINE'
  /** A header line that is not `name: value` (bad name, control byte, obs-fold). */
  | 'ERR_HTTP1_HEADER'
  /** Status line and headers longer than the head limit. */
  | 'ERR_HTTP1_HEAD_TOO_LARGE'
  /** More header (or trailer) lines than allowed. */
  | 'ERR_HTTP1_TOO_MANY_HEADERS'
  /** `Content-Length` not decimal digits, too long, or given twice with different values. */
  | 'ERR_HTTP1_CONTENT_LENGTH'
  /** `Transfer-Encoding` other than `chunked`, or together with `Content-Length`. */
  | 'ERR_HTTP1_TRANSFER_ENCODING'
  /** A chunk-size line that is not hex digits (≤ 13 significant) with optional extensions. */
  | 'ERR_HTTP1_CHUNK_SIZE'
  /** A line or chunk not ended by CRLF. */
  | 'ERR_HTTP1_MISSING_CRLF'
  /** A malformed or oversized trailer section. */
  | 'ERR_HTTP1_TRAILERS'
  /** A status the client cannot follow (101, too many 1xx). */
  | 'ERR_HTTP1_UNEXPECTED_STATUS'
  /** The connection closed before the answer ended. */
  | 'ERR_HTTP1_TRUNCATED'

/** A malformed HTTP/1.1 answer. */
export class Http1Error extends KeylimeError {
  declare readonly code: Http1ErrorCode

  constructor(code: Http1ErrorCode, message: string) {
    super(code, message, { status: 502 })
    this.name = 'Http1Error'
  }
}

/** A complete answer. */
export interface Http1Response {
  status: number
  body: Buffer
  /** The connection may carry the next request (HTTP/1.1, no `Connection: close`, no extra bytes). */
  keepAlive: boolean
}

/** Limits of the head (the body's are the {@link BoundedBody}'s). */
export interface Http1Limits {
  /** Status line plus header lines, CRLFs included (default 64 KiB); also bounds the trailers. */
  maxHeadBytes?: number
  /** Header lines (default 100); also bounds the trailer lines. */
  maxHeaders?: number
}

type State =
  | 'head'
  | 'length'
  | 'close'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-cr'
  | 'chunk-lf'
  | 'trailers'
  | 'done'

const CR = 13
const LF = 10
/** A chunk-size line with its extensions (nobody sends extensions; this is generous). */
const MAX_CHUNK_LINE = 4096
/** Chunk sizes stay below 16^13 = 2^52: every size a cap can allow, with exact arithmetic. */
const CHUNK_SIZE_LIMIT = 2 ** 52
const MAX_INTERIM = 8
const MAX_CONTENT_LENGTH_DIGITS = 15

const STATUS_LINE = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
const DIGITS = /^\d+$/

/** Trims spaces and tabs (not `String#trim`, which also drops NBSP and other separators). */
function trimOws(s: string): string {
  let a = 0
  let b = s.length
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--
  return s.slice(a, b)
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48
  if (b >= 97 && b <= 102) return b - 87
  if (b >= 65 && b <= 70) return b - 55
  return -1
}

/** The reader of one answer; feed it with {@link push}, and {@link end} when the peer closed. */
export class Http1ResponseReader {
  readonly #body: BoundedBody
  readonly #maxHead: number
  readonly #maxHeaders: number
  #state: State = 'head'
  /** The chunk being read and the position in it. */
  #c: Buffer = Buffer.alloc(0)
  #p = 0
  /** A line split across chunks (bounded by the caller of {@link #line}). */
  #pending: Buffer | undefined
  #pendingLen = 0
  /** Head: bytes and header lines so far, what they said. */
  #headBytes = 0
  #headers = 0
  #interim = 0
  #status = 0
  #http10 = false
  #close = false
  #length: number | undefined
  #chunked = false
  /** Body bytes still due (Content-Length, or the current chunk). */
  #remaining = 0
  #started = false

  constructor(body: BoundedBody, limits: Http1Limits = {}) {
    this.#body = body
    this.#maxHead = limits.maxHeadBytes ?? 64 * 1024
    this.#maxHeaders = limits.maxHeaders ?? 100
  }

  /** Whether any byte of the answer arrived. */
  get started(): boolean {
    return this.#started
  }

  /**
   * Feeds the next bytes. Returns the answer once complete (bytes after it make it not kept
   * alive), undefined while more is needed; bytes after completion are ignored.
   *
   * @throws Http1Error on malformed framing; BodyLimitError past the cap or budget
   */
  push(chunk: Uint8Array): Http1Response | undefined {
    if (this.#state === 'done' || chunk.byteLength === 0) return undefined
    this.#started = true
    this.#c = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    this.#p = 0
    const n = this.#c.byteLength
    // #step moves the state on (TypeScript keeps the narrowing from the guard above)
    while (this.#p < n && (this.#state as State) !== 'done') this.#step()
    this.#body.count(this.#p) // head, framing and body bytes of this answer alike
    if ((this.#state as State) !== 'done') return undefined
    return this.#finish(this.#p < n)
  }

  /**
   * The peer closed the connection: the answer if its body runs to the close.
   *
   * @throws Http1Error `ERR_HTTP1_TRUNCATED` when the answer was not complete
   */
  end(): Http1Response {
    if (this.#state === 'close') {
      this.#state = 'done'
      return this.#finish(true)
    }
    throw new Http1Error(
      'ERR_HTTP1_TRUNCATED',
      this.#started ? `connection closed in the answer's ${this.#state}` : 'no answer',
    )
  }

  #finish(extra: boolean): Http1Response {
    return {
      status: this.#status,
      body: this.#body.join(),
      keepAlive: !extra && !this.#close && !this.#http10 && this.#length !== undefined,
    }
  }

  #step(): void {
    switch (this.#state) {
      case 'head':
        this.#readHeadLine()
        break
      case 'length':
      case 'close':
      case 'chunk-data':
        this.#readBody()
        break
      case 'chunk-size':
        this.#readChunkSize()
        break
      case 'chunk-cr':
      case 'chunk-lf':
        this.#readChunkEnd()
        break
      case 'trailers':
        this.#readTrailer()
        break
      default:
    }
  }

  /**
   * The next line (without its CRLF) when its LF is in this chunk, else undefined (the bytes are
   * kept, at most `max` of them). The view is valid until the next call.
   */
  #line(max: number, tooLong: () => never): Buffer | undefined {
    const c = this.#c
    const lf = c.indexOf(LF, this.#p)
    const end = lf < 0 ? c.byteLength : lf
    const len = this.#pendingLen + end - this.#p
    if (len > max) tooLong()
    let line: Buffer
    if (this.#pendingLen === 0 && lf >= 0) line = c.subarray(this.#p, end)
    else {
      const need = this.#pendingLen + end - this.#p
      if (this.#pending === undefined || this.#pending.byteLength < need) {
        const grown = Buffer.allocUnsafe(Math.min(max, Math.max(256, need * 2)))
        if (this.#pending !== undefined) this.#pending.copy(grown, 0, 0, this.#pendingLen)
        this.#pending = grown
      }
      c.copy(this.#pending, this.#pendingLen, this.#p, end)
      this.#pendingLen = need
      line = this.#pending.subarray(0, need)
    }
    if (lf < 0) {
      this.#p = c.byteLength
      return undefined
    }
    this.#p = lf + 1
    this.#pendingLen = 0
    if (line.byteLength === 0 || line[line.byteLength - 1] !== CR) {
      throw new Http1Error('ERR_HTTP1_MISSING_CRLF', 'a line ends with LF alone')
    }
    return line.subarray(0, line.byteLength - 1)
  }

  /** The next head or trailer line, counted against the head limit. */
  #limitedLine(tooLong: () => never): Buffer | undefined {
    const before = this.#pendingLen + this.#c.byteLength - this.#p
    const line = this.#line(this.#maxHead - this.#headBytes, tooLong)
    if (line !== undefined) this.#headBytes += before - (this.#c.byteLength - this.#p)
    return line
  }

  #readHeadLine(): void {
    const line = this.#limitedLine(() => {
      throw new Http1Error('ERR_HTTP1_HEAD_TOO_LARGE', `head longer than ${this.#maxHead} bytes`)
    })
    if (line === undefined) return
    const text = line.toString('latin1')
    if (this.#status === 0) this.#statusLine(text)
    else if (text === '') this.#endOfHead()
    else this.#headerLine(text)
  }

  #headerLine(text: string): void {
    if (++this.#headers > this.#maxHeaders) {
      throw new Http1Error('ERR_HTTP1_TOO_MANY_HEADERS', `more than ${this.#maxHeaders} headers`)
    }
    const [name, value] = this.#field(text, 'ERR_HTTP1_HEADER')
    if (name === 'content-length') this.#contentLength(value)
    else if (name === 'transfer-encoding') this.#transferEncoding(value)
    else if (name === 'connection') {
      if (
        value
          .toLowerCase()
          .split(',')
          .some((t) => trimOws(t) === 'close')
      )
        this.#close = true
    }
  }

  #statusLine(text: string): void {
    const m = STATUS_LINE.exec(text)
    if (m === null) {
      throw new Http1Error('ERR_HTTP1_STATUS_LINE', 'not an HTTP/1.1 status line')
    }
    this.#status = Number(m[2])
    this.#http10 = m[1] === '0'
  }

  /** `name: value` → lower-case name and trimmed value. */
  #field(text: string, code: 'ERR_HTTP1_HEADER' | 'ERR_HTTP1_TRAILERS'): [string, string] {
    const colon = text.indexOf(':')
    const name = colon < 0 ? '' : text.slice(0, colon)
    const value = text.slice(colon + 1)
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      throw new Http1Error(code, 'a header line is not `name: value`')
    }
    return [name.toLowerCase(), trimOws(value)]
  }

  #contentLength(value: string): void {
    for (const part of value.split(',')) {
      const v = trimOws(part)
      if (!DIGITS.test(v) || v.replace(/^0+(?=\d)/, '').length > MAX_CONTENT_LENGTH_DIGITS) {
        throw new Http1Error('ERR_HTTP1_CONTENT_LENGTH', 'Content-Length is not a decimal length')
      }
      const n = Number(v)
      if (this.#length !== undefined && this.#length !== n) {
        throw new Http1Error('ERR_HTTP1_CONTENT_LENGTH', 'Content-Length given with two values')
      }
      this.#length = n
    }
  }

  #transferEncoding(value: string): void {
    const codings = value.split(',').map((t) => trimOws(t).toLowerCase())
    if (this.#chunked || codings.length !== 1 || codings[0] !== 'chunked') {
      throw new Http1Error('ERR_HTTP1_TRANSFER_ENCODING', 'Transfer-Encoding other than chunked')
    }
    this.#chunked = true
  }

  #endOfHead(): void {
    const s = this.#status
    if (s >= 100 && s < 200) {
      if (s === 101 || ++this.#interim > MAX_INTERIM) {
        throw new Http1Error('ERR_HTTP1_UNEXPECTED_STATUS', `unexpected ${s} answer`)
      }
      // an interim answer: the real one follows
      this.#status = 0
      this.#headBytes = 0
      this.#headers = 0
      this.#close = false
      this.#length = undefined
      this.#chunked = false
      return
    }
    if (this.#chunked && (this.#length !== undefined || this.#http10)) {
      throw new Http1Error(
        'ERR_HTTP1_TRANSFER_ENCODING',
        'Transfer-Encoding with Content-Length or in HTTP/1.0',
      )
    }
    if (s === 204 || s === 304) {
      this.#length = 0
      this.#chunked = false
    }
    if (this.#chunked) {
      this.#length = 0 // framed, so it may be kept alive
      this.#state = 'chunk-size'
    } else if (this.#length !== undefined) {
      this.#body.expect(this.#length)
      this.#remaining = this.#length
      this.#state = this.#length === 0 ? 'done' : 'length'
    } else this.#state = 'close'
  }

  #readBody(): void {
    const c = this.#c
    const p = this.#p
    const take =
      this.#state === 'close' ? c.byteLength - p : Math.min(this.#remaining, c.byteLength - p)
    this.#body.keep(c, p, p + take)
    this.#p = p + take
    if (this.#state === 'close') return
    this.#remaining -= take
    if (this.#remaining > 0) return
    this.#state = this.#state === 'length' ? 'done' : 'chunk-cr'
  }

  #readChunkSize(): void {
    // the usual line, `<hex>\r\n` within this chunk, is read in place
    const c = this.#c
    if (this.#pendingLen === 0) {
      const end = this.#hex(c, this.#p, Math.min(c.byteLength, this.#p + MAX_CHUNK_LINE))
      if (end > this.#p && c[end] === CR && c[end + 1] === LF) {
        this.#p = end + 2
        this.#chunkSized()
        return
      }
    }
    const line = this.#line(MAX_CHUNK_LINE, () => {
      throw new Http1Error('ERR_HTTP1_CHUNK_SIZE', `chunk-size line over ${MAX_CHUNK_LINE} bytes`)
    })
    if (line === undefined) return
    const end = this.#hex(line, 0, line.byteLength)
    if (end <= 0) {
      throw new Http1Error('ERR_HTTP1_CHUNK_SIZE', 'chunk size is not 1 to 13 hex digits')
    }
    this.#checkExtensions(line, end)
    this.#chunkSized()
  }

  /**
   * Reads hex digits of `b[from, to)` into {@link #remaining}; returns where they end, or -1 when
   * the size reaches {@link CHUNK_SIZE_LIMIT}.
   */
  #hex(b: Buffer, from: number, to: number): number {
    let size = 0
    let i = from
    for (; i < to; i++) {
      const h = hexValue(b[i] as number)
      if (h < 0) break
      size = size * 16 + h
      if (size >= CHUNK_SIZE_LIMIT) return -1
    }
    this.#remaining = size
    return i
  }

  #chunkSized(): void {
    if (this.#remaining === 0) {
      this.#headBytes = 0
      this.#headers = 0
      this.#state = 'trailers'
      return
    }
    this.#body.expect(this.#remaining)
    this.#state = 'chunk-data'
  }

  /** After the size: nothing, or `;` extensions of visible characters, spaces and tabs. */
  #checkExtensions(line: Buffer, from: number): void {
    let i = from
    while (i < line.byteLength && (line[i] === 32 || line[i] === 9)) i++
    if (i === line.byteLength) return
    let ok = line[i] === 0x3b // ';'
    for (; ok && i < line.byteLength; i++) {
      const b = line[i] as number
      ok = b === 9 || (b >= 32 && b !== 127)
    }
    if (!ok) throw new Http1Error('ERR_HTTP1_CHUNK_SIZE', 'chunk size followed by bad bytes')
  }

  #readChunkEnd(): void {
    const c = this.#c
    const p = this.#p
    if (this.#state === 'chunk-cr' && c[p] === CR && c[p + 1] === LF) {
      this.#p = p + 2 // both bytes at hand (the usual case)
      this.#state = 'chunk-size'
      return
    }
    const want = this.#state === 'chunk-cr' ? CR : LF
    if (c[p] !== want) {
      throw new Http1Error('ERR_HTTP1_MISSING_CRLF', 'chunk data not followed by CRLF')
    }
    this.#p = p + 1
    this.#state = want === CR ? 'chunk-lf' : 'chunk-size'
  }

  #readTrailer(): void {
    const line = this.#limitedLine(() => {
      throw new Http1Error('ERR_HTTP1_TRAILERS', `trailers longer than ${this.#maxHead} bytes`)
    })
    if (line === undefined) return
    if (line.byteLength === 0) {
      this.#state = 'done'
      return
    }
    if (++this.#headers > this.#maxHeaders) {
      throw new Http1Error('ERR_HTTP1_TOO_MANY_HEADERS', `more than ${this.#maxHeaders} trailers`)
    }
    this.#field(line.toString('latin1'), 'ERR_HTTP1_TRAILERS')
  }
}
