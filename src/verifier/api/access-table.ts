/**
 * The verifier's routes and their actions (upstream `keylime/web/verifier_server.py`, 7.14; the
 * kinds are in `http/access/action.ts`). `/v2/…` covers every `/v2.x` prefix and `/v3/…` `/v3.0`.
 * The v3 rows follow upstream even where keylime-ts answers 404 (the v3 policy routes), so an
 * anonymous client gets upstream's answer to the question "may I?".
 *
 * @module
 */
import type { AccessRule } from '../../http/access/enforce-access.ts'
import { OPS_ACCESS } from '../../http/add-ops-routes.ts'
import { VERSION_ACCESS } from '../../http/add-version-routes.ts'
import { JWKS_PATH } from './ear.ts'

/** Every verifier route, as the API table reads (keylime-api.md §1.2). */
export const VERIFIER_ACCESS: readonly AccessRule[] = [
  // Server information (public).
  ['GET', '/', 'read_server_info'],
  ...VERSION_ACCESS,
  ['GET', '/v2/', 'read_server_info'],
  ['GET', '/v3/', 'read_server_info'],
  // keylime-ts operations endpoints (admin).
  ...OPS_ACCESS,
  // Agents.
  ['GET', '/v2/agents', 'list_agents'],
  ['POST', '/v2/agents', 'create_agent'], // keylime-ts: 400 "uri not supported"
  ['PUT', '/v2/agents', 'create_agent'], // keylime-ts: 400 "uri not supported"
  ['GET', '/v2/agents/:agent_id', 'read_agent'],
  ['POST', '/v2/agents/:agent_id', 'create_agent'],
  ['DELETE', '/v2/agents/:agent_id', 'delete_agent'],
  ['PUT', '/v2/agents/:agent_id/reactivate', 'reactivate_agent'],
  ['PUT', '/v2/agents/:agent_id/stop', 'stop_agent'],
  ['GET', '/v3/agents', 'list_agents'],
  ['POST', '/v3/agents', 'create_agent'],
  ['GET', '/v3/agents/:agent_id', 'read_agent'],
  ['PATCH', '/v3/agents/:agent_id', 'update_agent'],
  ['DELETE', '/v3/agents/:agent_id', 'delete_agent'],
  // Runtime (IMA) policies.
  ['GET', '/v2/allowlists', 'list_runtime_policies'],
  ['GET', '/v2/allowlists/:name', 'read_runtime_policy'],
  ['POST', '/v2/allowlists/:name', 'create_runtime_policy'],
  ['PUT', '/v2/allowlists/:name', 'update_runtime_policy'],
  ['DELETE', '/v2/allowlists/:name', 'delete_runtime_policy'],
  ['GET', '/v3/policies/ima', 'list_runtime_policies'],
  ['POST', '/v3/policies/ima', 'create_runtime_policy'],
  ['GET', '/v3/policies/ima/:name', 'read_runtime_policy'],
  ['PATCH', '/v3/policies/ima/:name', 'update_runtime_policy'],
  ['DELETE', '/v3/policies/ima/:name', 'delete_runtime_policy'],
  // Measured-boot policies.
  ['GET', '/v2/mbpolicies', 'list_mb_policies'],
  ['GET', '/v2/mbpolicies/:name', 'read_mb_policy'],
  ['POST', '/v2/mbpolicies/:name', 'create_mb_policy'],
  ['PUT', '/v2/mbpolicies/:name', 'update_mb_policy'],
  ['DELETE', '/v2/mbpolicies/:name', 'delete_mb_policy'],
  ['GET', '/v3/refstates/uefi', 'list_mb_policies'],
  ['POST', '/v3/refstates/uefi', 'create_mb_policy'],
  ['GET', '/v3/refstates/uefi/:name', 'read_mb_policy'],
  ['PATCH', '/v3/refstates/uefi/:name', 'update_mb_policy'],
  ['DELETE', '/v3/refstates/uefi/:name', 'delete_mb_policy'],
  // keylime-ts signed attestation results (docs/ear.md): the agent's EAR (admin), the JWKS (public).
  ['GET', '/v2/agents/:agent_id/ear', 'read_attestation_result'],
  ['GET', '/v3/agents/:agent_id/ear', 'read_attestation_result'],
  ['GET', JWKS_PATH, 'read_result_keys'],
  // One-shot verification (public).
  ['GET', '/v2/verify/identity', 'verify_identity'],
  ['POST', '/v2/verify/evidence', 'verify_evidence'],
  ['POST', '/v3/verify/evidence', 'verify_evidence'],
  // Push mode (v3): attestations and sessions.
  ['GET', '/v3/agents/:agent_id/attestations', 'list_attestations'],
  ['GET', '/v3/agents/:agent_id/attestations/latest', 'read_attestation'],
  ['GET', '/v3/agents/:agent_id/attestations/:index', 'read_attestation'],
  ['POST', '/v3/agents/:agent_id/attestations', 'submit_attestation'],
  ['PATCH', '/v3/agents/:agent_id/attestations/latest', 'submit_attestation'],
  ['PATCH', '/v3/agents/:agent_id/attestations/:index', 'submit_attestation'],
  ['POST', '/v3/sessions', 'create_session'],
  ['PATCH', '/v3/sessions/:session_id', 'extend_session'],
  ['GET', '/v3/agents/:agent_id/session/:token', 'extend_session'],
  ['POST', '/v3/agents/:agent_id/session', 'create_session'],
  ['PATCH', '/v3/agents/:agent_id/session/:token', 'extend_session'],
]
