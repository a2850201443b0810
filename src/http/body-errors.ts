/**
 * Typed errors of request-body reading (`limit-body.ts`, `body-read-limiter.ts`). The status a
 * client sees for each, in the `{code, status, results}` envelope:
 *
 * | error | status |
 * | --- | --- |
 * | {@link BodyTooLarge} | 413 |
 * | {@link BodyReadTimeout} | 408 |
 * | {@link UploadsBusy} | 503 |
 * | {@link ClientAborted} | none (the client is gone; logged at DEBUG) |
 *
 * @module
 */
import { KeylimeError } from '../errors.ts'

/** The body is larger than the listener's `max_upload_size` (declared or counted). */
export class BodyTooLarge extends KeylimeError {
  constructor(maxSize: number) {
    super(
      'ERR_BODY_TOO_LARGE',
      `Request body exceeds the maximum upload size of ${maxSize} bytes`,
      {
        status: 413,
      },
    )
    this.name = 'BodyTooLarge'
  }
}

/** The body did not arrive within the listener's read deadline. */
export class BodyReadTimeout extends KeylimeError {
  constructor(ms: number) {
    super('ERR_BODY_TIMEOUT', `Request body not received within ${ms} ms`, { status: 408 })
    this.name = 'BodyReadTimeout'
  }
}

/** No body-read slot became free within the wait. */
export class UploadsBusy extends KeylimeError {
  constructor(waitMs: number) {
    super(
      'ERR_UPLOADS_BUSY',
      `Too many request bodies being received; retry (waited ${waitMs} ms)`,
      { status: 503 },
    )
    this.name = 'UploadsBusy'
  }
}

/** The client closed the connection before its body was read. */
export class ClientAborted extends KeylimeError {
  constructor(cause?: unknown) {
    super('ERR_CLIENT_ABORTED', 'The client closed the connection before its request was read', {
      status: 400,
      cause,
    })
    this.name = 'ClientAborted'
  }
}

/**
 * True for a client that went away: our {@link ClientAborted}, or the `AbortError` Bun raises
 * when a request body stream ends because the connection closed.
 */
export function isClientAbort(e: unknown): boolean {
  return e instanceof ClientAborted || (e instanceof Error && e.name === 'AbortError')
}
