/**
 * The actions of upstream Keylime's authorization (`keylime/authorization/provider.py`, 7.14) and
 * the decision of its `simple` provider (`keylime/authorization/providers/simple.py`): every route
 * maps to one action, and each action falls in one of four kinds.
 *
 * | kind | who may | actions |
 * | --- | --- | --- |
 * | `public` | anybody | `read_version`, `read_server_info`, `verify_identity`, `verify_evidence`, `create_session`, `extend_session`, `register_agent`, `activate_agent`, `read_result_keys` (keylime-ts) |
 * | `agent` | an agent (bearer token) on its own resource | `submit_attestation` |
 * | `agent_or_admin` | an agent on its own resource, or an admin | `read_agent`, `read_attestation_result` (keylime-ts: an agent's own EAR) |
 * | `admin` | an admin (verified client certificate) | everything else |
 *
 * An agent is identified by a push-mode bearer token (`identify-request.ts`, the verifier only).
 *
 * @module
 */

/**
 * An upstream action name, plus keylime-ts's own: `read_metrics` and `read_health` are admin,
 * `read_attestation_result` (an agent's EAR) is for an admin or the agent itself, and
 * `read_result_keys` (the JWKS) is public.
 */
export type Action =
  | 'create_agent'
  | 'read_agent'
  | 'update_agent'
  | 'delete_agent'
  | 'list_agents'
  | 'reactivate_agent'
  | 'stop_agent'
  | 'submit_attestation'
  | 'read_attestation'
  | 'list_attestations'
  | 'create_runtime_policy'
  | 'read_runtime_policy'
  | 'update_runtime_policy'
  | 'delete_runtime_policy'
  | 'list_runtime_policies'
  | 'create_mb_policy'
  | 'read_mb_policy'
  | 'update_mb_policy'
  | 'delete_mb_policy'
  | 'list_mb_policies'
  | 'create_session'
  | 'extend_session'
  | 'verify_identity'
  | 'verify_evidence'
  | 'register_agent'
  | 'activate_agent'
  | 'list_registrations'
  | 'read_registration'
  | 'delete_registration'
  | 'read_version'
  | 'read_server_info'
  | 'read_metrics'
  | 'read_health'
  | 'read_attestation_result'
  | 'read_result_keys'

/** Who an action is open to (upstream `SimpleAuthProvider`'s four sets). */
export type ActionKind = 'public' | 'agent' | 'agent_or_admin' | 'admin'

const PUBLIC = new Set<Action>([
  'read_version',
  'read_server_info',
  'verify_identity',
  'verify_evidence',
  'create_session',
  'extend_session',
  'register_agent',
  'activate_agent',
  'read_result_keys',
])
const AGENT_ONLY = new Set<Action>(['submit_attestation'])
const AGENT_OR_ADMIN = new Set<Action>(['read_agent', 'read_attestation_result'])

/** The kind of `action`; anything not listed is `admin`, as upstream. */
export function actionKind(action: Action): ActionKind {
  if (PUBLIC.has(action)) return 'public'
  if (AGENT_ONLY.has(action)) return 'agent'
  if (AGENT_OR_ADMIN.has(action)) return 'agent_or_admin'
  return 'admin'
}

/**
 * Who sent a request, as upstream's `ActionHandler._extract_identity` decides: `admin` for a
 * verified client certificate and no `Authorization` header, `agent` for a valid bearer token,
 * `anonymous` otherwise.
 */
export type Identity =
  { type: 'admin' } | { type: 'agent'; agentId: string } | { type: 'anonymous' }

/**
 * Upstream's decision: `null` when `identity` may perform `action` on `resource` (the route's
 * `agent_id`), else the refusal reason, word for word as upstream's `simple` provider gives it.
 */
export function authorizeAction(
  action: Action,
  identity: Identity,
  resource: string | undefined,
): string | null {
  const kind = actionKind(action)
  if (kind === 'public') return null
  const ownership = (agentId: string) =>
    agentId === resource
      ? null
      : `Agent ${agentId} cannot access resource ${resource} (ownership required)`
  if (kind === 'agent') {
    if (identity.type !== 'agent') {
      return `Action ${action} requires agent authentication (PoP token)`
    }
    return ownership(identity.agentId)
  }
  if (kind === 'agent_or_admin') {
    if (identity.type === 'admin') return null
    if (identity.type === 'agent') return ownership(identity.agentId)
    return `Action ${action} requires authentication`
  }
  if (identity.type !== 'admin') {
    return `Action ${action} requires admin authentication (mTLS certificate)`
  }
  return null
}
