/**
 * The verifier's database access, one repository per concern: agent rows and snapshot writes
 * (`agents.ts`, `snapshots.ts`), runtime and measured-boot policies with their history
 * (`policies.ts`), instances and leases (`instances.ts`), push-mode sessions (`sessions.ts`). All SQL of the verifier lives in this
 * folder; it runs unchanged on PGlite and PostgreSQL.
 *
 * {@link VerifierStore} composes the three and keeps the flat method names the attestation loop
 * and the tests call; new code may use `store.agents`, `store.policies`, `store.instances`.
 *
 * @module
 */
import type { Db } from '../../db/index.ts'
import { AgentStore } from './agents.ts'
import { AttestationStore } from './attestations.ts'
import { InstanceStore } from './instances.ts'
import { PolicyStore } from './policies.ts'
import { SessionStore } from './sessions.ts'

export type { AgentRow, ImaPolicyChoice, MbPolicyChoice, NewAgentRow } from './agents.ts'
export { nowSeconds } from './now-seconds.ts'
export type { AllowlistRow, MbPolicyRow } from './policies.ts'
export type { SessionRow, SessionSettings } from './sessions.ts'
export type { AgentSnapshot, HotSnapshot } from './snapshots.ts'

/**
 * Database operations of the verifier: the three repositories, and their methods flat (bound, and
 * plain properties so a test can wrap one).
 */
export class VerifierStore {
  readonly db: Db
  readonly agents: AgentStore
  readonly policies: PolicyStore
  readonly instances: InstanceStore
  /** Push-mode authentication sessions (`sessions.ts`); `sessions.extendAgentToken(id)`. */
  readonly sessions: SessionStore
  /** Push-mode attestations (`attestations.ts`). */
  readonly attestations: AttestationStore

  // agents (agents.ts)
  getAgent: AgentStore['getAgent']
  listAgentIds: AgentStore['listAgentIds']
  listAgents: AgentStore['listAgents']
  getAgents: AgentStore['getAgents']
  setStateGuarded: AgentStore['setStateGuarded']
  updateAgent: AgentStore['updateAgent']
  deleteAgent: AgentStore['deleteAgent']
  writeSnapshots: AgentStore['writeSnapshots']
  insertAgentWithPolicies: AgentStore['insertAgentWithPolicies']

  // policies (policies.ts)
  getAllowlist: PolicyStore['getAllowlist']
  getAllowlistById: PolicyStore['getAllowlistById']
  listAllowlistNames: PolicyStore['listAllowlistNames']
  policyVersions: PolicyStore['policyVersions']
  createAllowlist: PolicyStore['createAllowlist']
  updateAllowlist: PolicyStore['updateAllowlist']
  deleteAllowlist: PolicyStore['deleteAllowlist']
  allowlistHistory: PolicyStore['allowlistHistory']
  getMbPolicy: PolicyStore['getMbPolicy']
  getMbPolicyById: PolicyStore['getMbPolicyById']
  listMbPolicyNames: PolicyStore['listMbPolicyNames']
  createMbPolicy: PolicyStore['createMbPolicy']
  updateMbPolicy: PolicyStore['updateMbPolicy']
  deleteMbPolicy: PolicyStore['deleteMbPolicy']

  // instances and leases (instances.ts)
  heartbeat: InstanceStore['heartbeat']
  liveInstances: InstanceStore['liveInstances']
  removeInstance: InstanceStore['removeInstance']
  countPolled: InstanceStore['countPolled']
  renewLeases: InstanceStore['renewLeases']
  claim: InstanceStore['claim']
  release: InstanceStore['release']
  reapTerminated: InstanceStore['reapTerminated']

  constructor(db: Db) {
    this.db = db
    const a = new AgentStore(db)
    const p = new PolicyStore(db)
    const i = new InstanceStore(db, a)
    this.agents = a
    this.policies = p
    this.instances = i
    this.sessions = new SessionStore(db)
    this.attestations = new AttestationStore(db)
    this.getAgent = a.getAgent.bind(a)
    this.listAgentIds = a.listAgentIds.bind(a)
    this.listAgents = a.listAgents.bind(a)
    this.getAgents = a.getAgents.bind(a)
    this.setStateGuarded = a.setStateGuarded.bind(a)
    this.updateAgent = a.updateAgent.bind(a)
    this.deleteAgent = a.deleteAgent.bind(a)
    this.writeSnapshots = a.writeSnapshots.bind(a)
    this.insertAgentWithPolicies = a.insertAgentWithPolicies.bind(a)
    this.getAllowlist = p.getAllowlist.bind(p)
    this.getAllowlistById = p.getAllowlistById.bind(p)
    this.listAllowlistNames = p.listAllowlistNames.bind(p)
    this.policyVersions = p.policyVersions.bind(p)
    this.createAllowlist = p.createAllowlist.bind(p)
    this.updateAllowlist = p.updateAllowlist.bind(p)
    this.deleteAllowlist = p.deleteAllowlist.bind(p)
    this.allowlistHistory = p.allowlistHistory.bind(p)
    this.getMbPolicy = p.getMbPolicy.bind(p)
    this.getMbPolicyById = p.getMbPolicyById.bind(p)
    this.listMbPolicyNames = p.listMbPolicyNames.bind(p)
    this.createMbPolicy = p.createMbPolicy.bind(p)
    this.updateMbPolicy = p.updateMbPolicy.bind(p)
    this.deleteMbPolicy = p.deleteMbPolicy.bind(p)
    this.heartbeat = i.heartbeat.bind(i)
    this.liveInstances = i.liveInstances.bind(i)
    this.removeInstance = i.removeInstance.bind(i)
    this.countPolled = i.countPolled.bind(i)
    this.renewLeases = i.renewLeases.bind(i)
    this.claim = i.claim.bind(i)
    this.release = i.release.bind(i)
    this.reapTerminated = i.reapTerminated.bind(i)
  }
}
