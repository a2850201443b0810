/**
 * Admission of due rounds against the agent connection rate limit: a round that needs a new
 * connection waits for its handshake slot in the schedule, not in an in-flight slot, so rounds on
 * warm connections are never starved by rounds queued for a handshake
 * (see `AgentConnections.reserveConnect`).
 *
 * @module
 */
import type { AgentConnections, AgentTarget } from '../../http/agent-client/agent-connections.ts'
import type { AgentRecord } from './agent-record.ts'

/** Deferrals this short are not worth a trip through the schedule (ms). */
const RUN_NOW_MS = 20

/** The agent's address as the pool takes it, built once per record (its address never changes). */
export function targetOf(rec: AgentRecord, agentMtls: boolean): AgentTarget {
  if (rec.target === undefined) {
    const https = agentMtls && rec.mtlsCert !== null
    rec.target = { ip: rec.ip, port: rec.port, https, pinnedCert: rec.mtlsCert ?? undefined }
  }
  return rec.target
}

/** 0 to run the agent's round now, or the ms to defer it by until its connection slot. */
export function admitRound(
  rec: AgentRecord,
  agents: Pick<AgentConnections, 'isWarm' | 'reserveConnect'>,
  agentMtls: boolean,
): number {
  if (rec.connectReserved) {
    rec.connectReserved = false
    return 0
  }
  const target = targetOf(rec, agentMtls)
  if (agents.isWarm(target)) return 0
  const wait = agents.reserveConnect(target)
  if (wait <= RUN_NOW_MS) return 0
  rec.connectReserved = true
  return wait
}
