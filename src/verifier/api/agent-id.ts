/**
 * Agent ids and policy names in request paths (upstream `keylime/common/validators.py`).
 *
 * @module
 */
import { BadRequest } from '../../errors.ts'

/** Agent id rule of upstream; policy names follow it too. */
export const AGENT_ID_RE = /^[\w.-]{1,255}$/

/** Throws 400 unless `id` is a valid agent id (the message is upstream's, typo included). */
export function checkAgentId(id: string): void {
  if (!AGENT_ID_RE.test(id)) throw new BadRequest('agent_id not not valid')
}
