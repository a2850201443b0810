/**
 * Agent API version negotiation of the pull loop: after an agent refuses our version, ask its
 * `/version` and move to the newest version both speak. A version downgrade is refused once the
 * agent has passed an attestation (an attacker must not walk a trusted agent back to an older API).
 *
 * @module
 */
import {
  AGENT_API_VERSIONS,
  compareApiVersions,
  newestCommonVersion,
} from '../../protocol/api-versions.ts'
import type { MtlsResponse } from '../../http/parse-mtls-response.ts'
import type { Logger } from '../../log/logger.ts'
import type { AgentRecord } from './agent-record.ts'

/** The outcome of choosing a version. */
export type VersionChoice =
  { kind: 'use'; version: string } | { kind: 'none' } | { kind: 'downgrade'; version: string }

/**
 * The version to use with an agent whose `/version` results are `results` (agent input: only
 * string versions count), given the version in use and whether the agent ever passed.
 */
export function chooseVersion(results: unknown, current: string, passed: boolean): VersionChoice {
  if (typeof results !== 'object' || results === null) return { kind: 'none' }
  const r = results as { supported_versions?: unknown; supported_version?: unknown }
  const theirs: unknown[] = Array.isArray(r.supported_versions)
    ? r.supported_versions
    : typeof r.supported_version === 'string'
      ? [r.supported_version]
      : []
  const best = newestCommonVersion(AGENT_API_VERSIONS, theirs)
  if (best === undefined) return { kind: 'none' }
  if (passed && compareApiVersions(best, current) < 0) return { kind: 'downgrade', version: best }
  return { kind: 'use', version: best }
}

/**
 * Asks the agent's `/version` (through `ask`) and sets `rec.supportedVersion`. Returns whether a
 * version both speak is in use now, and whether it changed (the record must then be written).
 */
export async function negotiateVersion(
  rec: AgentRecord,
  ask: () => Promise<MtlsResponse>,
  log: Logger,
): Promise<{ ok: boolean; changed: boolean }> {
  let res: MtlsResponse
  try {
    res = await ask()
  } catch {
    return { ok: false, changed: false }
  }
  if (res.status !== 200) return { ok: false, changed: false }
  const choice = chooseVersion(res.results, rec.supportedVersion, rec.attestationCount > 0)
  if (choice.kind === 'none') return { ok: false, changed: false }
  if (choice.kind === 'downgrade') {
    log.warn('agent API version downgrade refused', {
      agent_id: rec.id,
      offered: choice.version,
      had: rec.supportedVersion,
    })
    return { ok: false, changed: false }
  }
  const changed = choice.version !== rec.supportedVersion
  if (changed) {
    log.info('agent API version negotiated', { agent_id: rec.id, version: choice.version })
    rec.supportedVersion = choice.version
  }
  return { ok: true, changed }
}
