/**
 * Upstream's authentication and authorization error shape (`keylime/web/base/action_handler.py`,
 * the session controller): `{"errors":[{"status":"401","title":"Unauthorized","detail":"…"}]}`,
 * sent as `application/json`, unlike the v2 envelope and the JSON:API errors of attestations.
 *
 * @module
 */

/** The titles upstream pairs with each status. */
const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
}

/** The body of an error answer in upstream's authentication shape. */
export function authErrorBody(status: number, detail: string): Record<string, unknown> {
  return { errors: [{ status: String(status), title: TITLES[status] ?? 'Error', detail }] }
}

/** An error answer in upstream's authentication shape, with extra headers (`Retry-After`). */
export function authErrorResponse(
  status: number,
  detail: string,
  headers?: Record<string, string>,
): Response {
  return Response.json(authErrorBody(status, detail), { status, headers })
}
