/**
 * The registrar's routes and their actions (upstream `keylime/web/registrar_server.py`, 7.14; the
 * kinds are in `http/access/action.ts`), enforced on its TLS port. `/v2/…` covers every `/v2.x`
 * prefix and `/v3/…` `/v3.0`.
 *
 * @module
 */
import type { AccessRule } from '../http/access/enforce-access.ts'
import { OPS_ACCESS } from '../http/add-ops-routes.ts'
import { VERSION_ACCESS } from '../http/add-version-routes.ts'

/** Every registrar route, as the API table reads (keylime-api.md §1.6). */
export const REGISTRAR_ACCESS: readonly AccessRule[] = [
  // Version information (public).
  ['GET', '/', 'read_version'],
  ...VERSION_ACCESS,
  ['GET', '/v3/', 'read_version'],
  // keylime-ts operations endpoints (admin).
  ...OPS_ACCESS,
  // Agent self-registration (public; upstream allow_insecure).
  ['POST', '/v2/agents', 'register_agent'],
  ['POST', '/v2/agents/:agent_id', 'register_agent'],
  ['POST', '/v2/agents/:agent_id/activate', 'activate_agent'],
  ['PUT', '/v2/agents/:agent_id/activate', 'activate_agent'],
  ['PUT', '/v2/agents/:agent_id', 'activate_agent'],
  ['POST', '/v3/agents', 'register_agent'],
  ['POST', '/v3/agents/:agent_id/activate', 'activate_agent'],
  // Administration (admin).
  ['GET', '/v2/agents', 'list_registrations'],
  ['GET', '/v2/agents/:agent_id', 'read_registration'],
  ['DELETE', '/v2/agents/:agent_id', 'delete_registration'],
  ['GET', '/v3/agents', 'list_registrations'],
  ['GET', '/v3/agents/:agent_id', 'read_registration'],
  ['DELETE', '/v3/agents/:agent_id', 'delete_registration'],
]
