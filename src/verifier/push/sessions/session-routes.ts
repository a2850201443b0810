/**
 * `POST /v3[.0]/sessions` and `PATCH /v3[.0]/sessions/:session_id` (public; push-protocol.md
 * §1.5.3–1.5.4). Answers are plain `application/json` in upstream's shapes, errors included (a
 * body that is no JSON object is a 400 `{"errors":[…]}`, not the v2 envelope).
 *
 * @module
 */
import type { Context } from 'hono'
import { mountVersioned } from '../../../http/add-version-routes.ts'
import { authErrorResponse } from '../../../http/access/auth-error.ts'
import { createRoutes, type KeylimeApp } from '../../../http/create-app.ts'
import type { ListenerEnv } from '../../../http/listener-types.ts'
import { readJsonObject } from '../../../http/read-json.ts'
import { isKeylimeError } from '../../../errors.ts'
import type { PushSessions, SessionAnswer } from './push-sessions.ts'

/** The access rules of these routes are in `api/access-table.ts` (`create_session`, `extend_session`). */
const send = (a: SessionAnswer) => Response.json(a.body, { status: a.status, headers: a.headers })

/** Runs `fn` on the request's JSON object, or answers 400/415 in upstream's error shape. */
async function withBody(
  c: Context,
  fn: (body: Record<string, unknown>) => Promise<SessionAnswer>,
): Promise<Response> {
  let body: Record<string, unknown>
  try {
    body = await readJsonObject(c)
  } catch (e) {
    if (!isKeylimeError(e) || e.status >= 500) throw e
    return authErrorResponse(e.status, e.message)
  }
  return send(await fn(body))
}

/** Mounts the session routes under `/v3` and `/v3.0`. */
export function addSessionRoutes(app: KeylimeApp, sessions: PushSessions): void {
  const r = createRoutes()
  r.post('/sessions', (c) => {
    const ip = (c.env as Partial<ListenerEnv> | undefined)?.remoteIp ?? 'in-process'
    return withBody(c, (body) => sessions.create(body, ip))
  })
  r.patch('/sessions/:session_id', (c) =>
    withBody(c, (body) => sessions.prove(c.req.param('session_id'), body)),
  )
  mountVersioned(app, 3, r)
}
