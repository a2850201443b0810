/**
 * Keylime's v2 response envelope: `{"code": <int>, "status": "<text>", "results": {...}}`
 * (upstream `keylime/web_util.py: echo_json_response`). Errors use the same shape with empty results.
 *
 * @module
 */

/** The JSON shape of every v2 response. */
export interface Envelope<T = Record<string, unknown>> {
  code: number
  status: string
  results: T
}

/** Builds an envelope `Response` with `Content-Type: application/json`. */
export function envelopeResponse<T>(
  code: number,
  status: string,
  results: T = {} as T,
  headers?: Record<string, string>,
): Response {
  const body: Envelope<T> = { code, status, results }
  const h = new Headers(headers)
  h.set('Content-Type', 'application/json')
  return new Response(code === 204 ? null : JSON.stringify(body), { status: code, headers: h })
}
