/**
 * Request bodies read under a size cap, a shared concurrency bound and an optional deadline
 * (issue 17, finding 6), before any handler runs; handlers then read the buffered copy.
 *
 * - A declared `Content-Length` far above the cap is refused before a byte is read.
 * - Without one (chunked) or when it lies, the bytes are counted as they arrive; nothing past
 *   the cap is kept, and at most {@link DRAIN_BYTES} past it are read at all.
 * - The read takes a slot of the role's {@link BodyReadLimiter}; it holds it only while bytes
 *   arrive, so memory in flight is at most `slots × cap`.
 * - Refusals (413, 408, 503) answer in the envelope with `Connection: close` (unless an oversized
 *   body was read to its end), so Bun drops the connection instead of draining the rest.
 * - A client that disconnects mid-body raises {@link ClientAborted}, which the app logs at DEBUG.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono'
import type { BodyReadLimiter } from './body-read-limiter.ts'
import { BodyReadTimeout, BodyTooLarge, ClientAborted, UploadsBusy } from './body-errors.ts'
import { envelopeResponse } from './envelope.ts'

/** Options of {@link limitBody}. */
export interface LimitBodyOptions {
  /** Largest body in bytes. */
  maxSize: number
  /** The role's shared bound on bodies read at once. */
  limiter: BodyReadLimiter
  /** The whole body must arrive within this many ms of its slot (default: no deadline). */
  readTimeoutMs?: number
}

/** Bun's own default `maxRequestBodySize` (128 MiB). */
const BUN_DEFAULT_MAX_BODY = 128 * 1024 * 1024

/**
 * `maxRequestBodySize` for Bun.serve in front of {@link limitBody}: never below the cap, so
 * every body the app can refuse gets the envelope; above it Bun refuses by itself.
 */
export function serverBodyCeiling(maxSize: number): number {
  return Math.max(maxSize + 65_536, BUN_DEFAULT_MAX_BODY)
}

/**
 * Bytes past the cap still read (and dropped) so that a modestly oversized body ends cleanly and
 * the client reads its 413: closing with unread bytes makes TCP answer a reset, which can wipe the
 * response from the client's buffers. Larger uploads are cut off at once.
 */
const DRAIN_BYTES = 1024 * 1024

function refuse(e: BodyTooLarge | BodyReadTimeout | UploadsBusy, close = true): Response {
  return envelopeResponse(e.status, e.message, {}, close ? { connection: 'close' } : undefined)
}

/** A read body, or the verdict on one over the cap (and whether its end was reached). */
type ReadResult = { bytes: Uint8Array } | { tooLarge: true; ended: boolean }

/** Reads `stream` whole under the cap; past it, drains up to {@link DRAIN_BYTES} more. */
async function readCapped(
  stream: ReadableStream<Uint8Array>,
  maxSize: number,
  declared: number | undefined,
  deadline: Promise<never> | undefined,
): Promise<ReadResult> {
  const reader = stream.getReader()
  let buffer = new Uint8Array(Math.min(declared ?? 16_384, maxSize))
  let size = 0
  try {
    for (;;) {
      const next = reader.read()
      const { done, value } = await (deadline ? Promise.race([next, deadline]) : next)
      if (done)
        return size > maxSize
          ? { tooLarge: true, ended: true }
          : { bytes: buffer.subarray(0, size) }
      size += value.byteLength
      if (size > maxSize + DRAIN_BYTES) return { tooLarge: true, ended: false }
      if (size > maxSize) continue
      if (size > buffer.byteLength) {
        const grown = new Uint8Array(Math.min(maxSize, Math.max(size, buffer.byteLength * 2)))
        grown.set(buffer.subarray(0, size - value.byteLength))
        buffer = grown
      }
      buffer.set(value, size - value.byteLength)
    }
  } catch (e) {
    if (e instanceof BodyReadTimeout) throw e
    throw new ClientAborted(e)
  } finally {
    reader.cancel().catch(() => {})
  }
}

/**
 * Middleware that buffers every request body under the cap, the limiter and the deadline.
 *
 * @example
 * ```ts
 * app.use('*', limitBody({ maxSize: 65_536, limiter: new BodyReadLimiter(), readTimeoutMs: 10_000 }))
 * ```
 */
export function limitBody(options: LimitBodyOptions): MiddlewareHandler {
  const { maxSize, limiter, readTimeoutMs } = options
  return async function limitBody(c, next) {
    const raw = c.req.raw
    if (raw.body === null) return next()
    const length = raw.headers.has('transfer-encoding') ? null : raw.headers.get('content-length')
    const declared = length === null ? undefined : Number(length)
    if (declared !== undefined && !(declared <= maxSize + DRAIN_BYTES)) {
      return refuse(new BodyTooLarge(maxSize))
    }
    let release: () => void
    try {
      release = await limiter.acquire(raw.signal)
    } catch (e) {
      if (e instanceof UploadsBusy) return refuse(e)
      throw e
    }
    let timer: ReturnType<typeof setTimeout> | undefined
    let read: ReadResult
    try {
      const deadline =
        readTimeoutMs === undefined
          ? undefined
          : new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new BodyReadTimeout(readTimeoutMs)), readTimeoutMs)
            })
      read = await readCapped(raw.body, maxSize, declared, deadline)
    } catch (e) {
      if (e instanceof BodyReadTimeout) return refuse(e)
      throw e
    } finally {
      clearTimeout(timer)
      release()
    }
    if (!('bytes' in read)) return refuse(new BodyTooLarge(maxSize), !read.ended)
    c.req.raw = new Request(raw, { body: read.bytes })
    return next()
  }
}
