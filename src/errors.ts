/**
 * The typed error base for keylime-ts (STYLE.md rule 4).
 *
 * Every failure that crosses a module boundary is a {@link KeylimeError}: it carries a stable,
 * greppable `code` (`ERR_…`), the HTTP `status` it maps to when it reaches the REST API, and an
 * optional `cause`. Domain modules subclass it (`ConfigError`, `TpmError`, …) with their own code
 * unions; `src/http` maps any of them to Keylime's `{code, status, results}` envelope in one place.
 *
 * Messages must never contain secrets (K, U, V, private keys, payloads).
 *
 * @module
 */

/** Options accepted by every {@link KeylimeError} constructor. */
export interface KeylimeErrorOptions {
  /** The HTTP status this error maps to at the API edge (default 500). */
  status?: number
  /** The underlying error, kept for logs; never sent to clients. */
  cause?: unknown
}

/**
 * Base class of all keylime-ts errors.
 *
 * @example
 * ```ts
 * throw new KeylimeError('ERR_AGENT_NOT_FOUND', 'agent id not found', { status: 404 })
 * ```
 */
export class KeylimeError extends Error {
  /** Stable machine-readable error code, e.g. `ERR_QUOTE_SIGNATURE`. */
  readonly code: string
  /** HTTP status used when the error reaches the REST API. */
  readonly status: number

  constructor(code: string, message: string, options: KeylimeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'KeylimeError'
    this.code = code
    this.status = options.status ?? 500
  }
}

/**
 * Base of the domain errors whose input came from an agent or a request body, so always HTTP 400,
 * typed by the domain's stable code union `C` (jose `JOSEError` style). A subclass only names
 * itself.
 *
 * @example
 * ```ts
 * export class TpmError extends InputError<TpmErrorCode> {
 *   override readonly name = 'TpmError'
 * }
 * ```
 */
export class InputError<C extends string = string> extends KeylimeError {
  /** The stable error code. */
  declare readonly code: C

  constructor(code: C, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, status: 400 })
    this.name = 'InputError'
  }
}

/** 400: the request or input is malformed. */
export class BadRequest extends KeylimeError {
  constructor(
    message: string,
    options: Omit<KeylimeErrorOptions, 'status'> & { code?: string } = {},
  ) {
    super(options.code ?? 'ERR_BAD_REQUEST', message, { ...options, status: 400 })
    this.name = 'BadRequest'
  }
}

/** 401: authentication is missing or wrong. */
export class Unauthorized extends KeylimeError {
  constructor(
    message: string,
    options: Omit<KeylimeErrorOptions, 'status'> & { code?: string } = {},
  ) {
    super(options.code ?? 'ERR_UNAUTHORIZED', message, { ...options, status: 401 })
    this.name = 'Unauthorized'
  }
}

/** 404: the named resource does not exist. */
export class NotFound extends KeylimeError {
  constructor(
    message: string,
    options: Omit<KeylimeErrorOptions, 'status'> & { code?: string } = {},
  ) {
    super(options.code ?? 'ERR_NOT_FOUND', message, { ...options, status: 404 })
    this.name = 'NotFound'
  }
}

/** 409: the resource exists already or is in use. */
export class Conflict extends KeylimeError {
  constructor(
    message: string,
    options: Omit<KeylimeErrorOptions, 'status'> & { code?: string } = {},
  ) {
    super(options.code ?? 'ERR_CONFLICT', message, { ...options, status: 409 })
    this.name = 'Conflict'
  }
}

/** Narrows an unknown thrown value to a {@link KeylimeError}. */
export function isKeylimeError(value: unknown): value is KeylimeError {
  return value instanceof KeylimeError
}
