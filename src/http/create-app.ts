/**
 * The hono application factory shared by the registrar and verifier listeners.
 *
 * It gives every role the same edge behaviour, in one place:
 * - every response, errors included, in Keylime's `{code, status, results}` envelope;
 * - typed {@link KeylimeError}s mapped to their HTTP status and message; a database outage → 503
 *   (`unavailable-response.ts`); anything else → 500 with a generic text (details go to the log,
 *   as `describeError` describes them, never to the client);
 * - request bodies capped at `max_upload_size` (413), counted while streaming so a lying or absent
 *   `Content-Length` does not help, and read under the role's shared concurrency bound
 *   (`limit-body.ts`);
 * - a client that disconnects mid-request is logged at DEBUG, not as a server error;
 * - trailing slashes accepted (`/agents/` = `/agents`), as upstream's router does;
 * - with `requestMetrics`, every request timed by route and method (`ops/request-metrics.ts`).
 *
 * {@link createRoutes} makes a bare route table to mount into such an app (`app.route(prefix, t)`,
 * see `add-version-routes.ts`): the app's middleware, error mapping and `notFound` apply to it.
 *
 * @module
 */
import { Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { isKeylimeError } from '../errors.ts'
import { stackFrames } from '../log/describe-error.ts'
import type { Logger } from '../log/logger.ts'
import { isClientAbort } from './body-errors.ts'
import { BodyReadLimiter } from './body-read-limiter.ts'
import { envelopeResponse } from './envelope.ts'
import { limitBody } from './limit-body.ts'
import type { RequestMetrics } from './ops/request-metrics.ts'
import { unavailableResponse } from './unavailable-response.ts'

/** Upstream's default `max_upload_size` (100 MiB). */
export const DEFAULT_MAX_UPLOAD_SIZE = 104_857_600

/** Options of {@link createApp}. */
export interface CreateAppOptions {
  /** Logger for 5xx errors and request failures. */
  log: Logger
  /** Largest accepted request body in bytes (`max_upload_size`). */
  maxUploadSize?: number
  /** The role's shared bound on bodies read at once (default: a limiter of this app's own). */
  bodyReads?: BodyReadLimiter
  /** The whole body must arrive within this many ms (default: no deadline). */
  bodyReadTimeoutMs?: number
  /** Times every request and sees every answer, refusals of the body limit included. */
  requestMetrics?: RequestMetrics
}

/** The hono app type used by all keylime-ts listeners. */
export type KeylimeApp = Hono

/** A route table without middleware, to mount into a {@link createApp} app. */
export function createRoutes(): KeylimeApp {
  return new Hono({ strict: false })
}

/**
 * Creates a hono app with the envelope, error mapping and body limit installed.
 *
 * @example
 * ```ts
 * const app = createApp({ log: getLogger('verifier') })
 * app.get('/version', (c) => envelopeResponse(200, 'Success', versionInfo()))
 * ```
 */
export function createApp(options: CreateAppOptions): KeylimeApp {
  const { log } = options
  const maxSize = options.maxUploadSize ?? DEFAULT_MAX_UPLOAD_SIZE
  const app = new Hono({ strict: false })

  if (options.requestMetrics) app.use('*', options.requestMetrics.middleware)
  app.use(
    '*',
    limitBody({
      maxSize,
      limiter: options.bodyReads ?? new BodyReadLimiter(),
      readTimeoutMs: options.bodyReadTimeoutMs,
    }),
  )

  app.notFound(() => envelopeResponse(404, 'Not Found'))

  app.onError((err) => {
    if (isClientAbort(err)) {
      log.debug('client closed the connection mid-request', { error: err })
      return envelopeResponse(400, 'Client closed the connection')
    }
    const unavailable = unavailableResponse(err, log)
    if (unavailable !== undefined) return unavailable
    if (isKeylimeError(err)) {
      if (err.status >= 500) log.error(err.message, { code: err.code, cause: err.cause })
      return envelopeResponse(err.status, err.message)
    }
    if (err instanceof HTTPException) {
      return envelopeResponse(err.status, err.message || 'Request failed')
    }
    log.error('unhandled error in request handler', { error: err, stack: stackFrames(err) })
    return envelopeResponse(500, 'Internal Server Error')
  })

  return app
}
