/**
 * Reads a JSON request body with Keylime's tolerance and our strictness.
 *
 * Upstream's tenant posts JSON without a `Content-Type` header (python-requests `data=`), and the Rust
 * agent sends `application/json`; both are accepted. Any other declared media type is refused with 415,
 * malformed JSON with 400, and a body that is not a JSON object (where one is expected) with 400 —
 * always as typed errors that the app maps to the envelope.
 *
 * @module
 */
import type { Context } from 'hono'
import { BadRequest, KeylimeError } from '../errors.ts'

/** Raised for a declared media type other than JSON. */
export class UnsupportedMediaType extends KeylimeError {
  constructor(contentType: string) {
    super(
      'ERR_UNSUPPORTED_MEDIA_TYPE',
      `Unsupported Content-Type "${contentType.slice(0, 80)}": send application/json`,
      { status: 415 },
    )
    this.name = 'UnsupportedMediaType'
  }
}

/** Whether a `Content-Type` header value denotes JSON (or is absent, as upstream clients send). */
function isJsonContentType(value: string | undefined | null): boolean {
  if (!value) return true
  const type = value.split(';')[0]!.trim().toLowerCase()
  return type === 'application/json' || type.endsWith('+json') || type === 'text/json'
}

/**
 * Parses the request body as a JSON object.
 *
 * @throws UnsupportedMediaType for a non-JSON `Content-Type`
 * @throws BadRequest for an empty body, malformed JSON or a non-object value
 */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  checkJsonContentType(c)
  return parseJsonObject(await c.req.text())
}

/**
 * The raw bytes of a JSON request body, for a handler that parses it elsewhere (a worker):
 * parse them with {@link parseJsonObject} to get the same errors as {@link readJsonObject}.
 *
 * @throws UnsupportedMediaType for a non-JSON `Content-Type`
 */
export async function readJsonBytes(c: Context): Promise<ArrayBuffer> {
  checkJsonContentType(c)
  return c.req.arrayBuffer()
}

function checkJsonContentType(c: Context): void {
  const contentType = c.req.header('content-type')
  if (!isJsonContentType(contentType)) throw new UnsupportedMediaType(contentType ?? '')
}

/**
 * Parses a request body text as a JSON object.
 *
 * @throws BadRequest for an empty body, malformed JSON or a non-object value
 */
export function parseJsonObject(text: string): Record<string, unknown> {
  if (text.trim() === '') throw new BadRequest('Request body is empty: a JSON object is required')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new BadRequest(`Invalid JSON in request body: ${(err as Error).message}`, {
      code: 'ERR_INVALID_JSON',
    })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BadRequest('Request body must be a JSON object', { code: 'ERR_INVALID_JSON' })
  }
  return value as Record<string, unknown>
}
