/**
 * The push attestation routes under `/v3[.0]/agents/:agent_id/attestations` (push-protocol.md
 * §1.5.5–§1.5.8). Bodies in and out are JSON:API (`application/vnd.api+json`); every error leaves
 * as a JSON:API error document ({@link pushErrorResponse}), never the v2 envelope
 * (`X-Request-ID` is echoed by the verifier app, `http/echo-request-id.ts`). Who may call each route is decided before (`access-table.ts`:
 * submitting is the agent's own, reading is the admin's).
 *
 * @module
 */
import type { Context } from 'hono'
import { createRoutes, type KeylimeApp } from '../../http/create-app.ts'
import { parseJsonObject } from '../../http/read-json.ts'
import type { AttestationsApi, PushAnswer } from './attestations-api.ts'
import { JSON_API, jsonApiResponse, PushError, pushErrorResponse } from './json-api.ts'

/** The collection path of the request (`/v3.0/agents/<id>/attestations`). */
function collectionOf(path: string): string {
  const i = path.indexOf('/attestations')
  return path.slice(0, i + '/attestations'.length)
}

/** The body as a JSON object; `vnd.api+json` (or JSON) only, as upstream `require_json_api`. */
export async function jsonApiBody(c: Context): Promise<Record<string, unknown>> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase()
  if (type !== JSON_API && type !== 'application/json') {
    throw new PushError(415, 'format_not_allowed', `Content-Type must be ${JSON_API}`)
  }
  const text = await c.req.text()
  if (text.trim() === '') throw new PushError(400, 'invalid_request', 'A request body is required')
  return parseJsonObject(text)
}

/** Runs an operation and renders its answer or error as JSON:API. */
export async function answer(c: Context, op: () => Promise<PushAnswer>): Promise<Response> {
  try {
    const a = await op()
    const body: Record<string, unknown> = { data: a.data }
    if (a.meta !== undefined) body.meta = a.meta
    return jsonApiResponse(a.status, body, c.req.path, a.headers)
  } catch (err) {
    return pushErrorResponse(err, c.req.path)
  }
}

function agentIdOf(c: Context): string {
  const id = c.req.param('agent_id') ?? ''
  if (id === '' || id.length > 255) throw new PushError(404, 'not_found', 'Agent not found')
  return id
}

/** The attestation routes, mounted at `/agents` of every v3 prefix. */
export function pushAttestationRoutes(api: AttestationsApi): KeylimeApp {
  const r = createRoutes()
  r.post('/:agent_id/attestations', (c) =>
    answer(c, async () => api.create(agentIdOf(c), await jsonApiBody(c), collectionOf(c.req.path))),
  )
  r.get('/:agent_id/attestations', (c) =>
    answer(c, () => api.list(agentIdOf(c), collectionOf(c.req.path))),
  )
  r.get('/:agent_id/attestations/:which', (c) =>
    answer(c, () => api.get(agentIdOf(c), c.req.param('which') ?? '', collectionOf(c.req.path))),
  )
  r.patch('/:agent_id/attestations/:which', (c) =>
    answer(c, async () =>
      api.submit(agentIdOf(c), c.req.param('which') ?? '', await jsonApiBody(c), c.req.path),
    ),
  )
  return r
}
