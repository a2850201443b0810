/**
 * Echoes a client's `X-Request-ID` on the answer, as upstream's web framework does; rust-keylime's
 * push agent sends one (6 lowercase alphanumerics) on every request to correlate logs.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono'

/** A request id worth echoing: short and plain (anything else is dropped, not reflected). */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/

/** Middleware that copies a plain `X-Request-ID` of the request onto every answer. */
export function echoRequestId(): MiddlewareHandler {
  return async (c, next) => {
    const rid = c.req.header('x-request-id')
    await next()
    if (rid === undefined || !REQUEST_ID.test(rid)) return
    try {
      c.res.headers.set('x-request-id', rid)
    } catch {
      // immutable headers (a forwarded Response): copy it
      c.res = new Response(c.res.body, c.res)
      c.res.headers.set('x-request-id', rid)
    }
  }
}
