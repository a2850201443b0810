/**
 * Agent ids and policy names in request paths (upstream `keylime/common/validators.py`).
 *
 * @module
 */
import { BadRequest } from '../../errors.ts'
import { AGENT_ID_RE } from '../../protocol/agent-id.ts'

export { AGENT_ID_RE }

/** Throws 400 unless `id` is a valid agent id (the message is upstream's, typo included). */
export function checkAgentId(id: string): void {
  if (!AGENT_ID_RE.test(id)) throw new BadRequest('agent_id not not valid')
}
