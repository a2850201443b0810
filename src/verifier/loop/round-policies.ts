/**
 * The runtime (IMA) and measured-boot policies of the loop's rounds, each compiled once per
 * stored version: a round on a cached policy neither parses nor compiles anything, nor rebuilds
 * the agent's IMA keyring. Entries are keyed by policy id and dropped when the stored version
 * moves on (a PUT here, or one made through another instance and seen by the lease tick).
 *
 * @module
 */
import { type CompiledRuntimePolicy, PolicyCache } from '../../ima/index.ts'
import type { Logger } from '../../log/logger.ts'
import {
  type ParsedMbPolicy,
  parseMbPolicy,
  type RoundPolicies,
  tenantKeyringOf,
} from '../checks/check-quote.ts'
import type { VerifierStore } from '../store/store.ts'
import type { AgentRecord } from './agent-record.ts'

/** A compiled runtime policy with the hold on it (see {@link PolicyCache}). */
export interface RuntimePolicyLease {
  readonly policy: CompiledRuntimePolicy
  release(): void
}

/** Compiles runtime policy text (default: the shared {@link PolicyCache}); throws when invalid. */
export type CompileRuntimePolicy = (text: string) => RuntimePolicyLease

/** Options of {@link RoundPolicyCache}. */
export interface RoundPolicyCacheOptions {
  store: Pick<VerifierStore, 'getAllowlistById' | 'getMbPolicyById'>
  log: Logger
  compileRuntime?: CompileRuntimePolicy
}

interface RuntimeEntry {
  version: number
  compiled: CompiledRuntimePolicy | null
  /** The stored text (sent once to each check worker). */
  text: string | undefined
  /** Identifies this version of the policy to check workers. */
  key: string
  release?: () => void
}

interface MbEntry extends ParsedMbPolicy {
  version: number
  /** Identifies this version of the policy to check workers. */
  key: string
}

/** A round's policies and what check workers need to fetch the runtime policy. */
export interface RoundPolicySet {
  policies: RoundPolicies
  /** The runtime policy's worker key, or null without one. */
  imaKey: string | null
  /** The runtime policy's text, for a worker that does not hold it yet. */
  imaText(): string | undefined
}

const NO_TEXT = (): undefined => undefined

/** The policy cache of one loop. */
export class RoundPolicyCache {
  readonly #o: RoundPolicyCacheOptions
  readonly #compile: CompileRuntimePolicy
  readonly #runtime = new Map<number, RuntimeEntry>()
  readonly #mb = new Map<number, MbEntry>()

  constructor(o: RoundPolicyCacheOptions) {
    this.#o = o
    if (o.compileRuntime !== undefined) this.#compile = o.compileRuntime
    else {
      const shared = new PolicyCache(16)
      this.#compile = (text) => shared.acquire(text)
    }
  }

  /** The round's policies when both are cached (every round but an agent's first), else undefined. */
  cached(rec: AgentRecord): RoundPolicySet | undefined {
    const ima = rec.imaPolicyId === null ? null : this.#runtime.get(rec.imaPolicyId)
    const mb = rec.mbPolicyId === null ? null : this.#mb.get(rec.mbPolicyId)
    if (ima === undefined || mb === undefined) return undefined
    return this.#set(rec, ima, mb)
  }

  /** The round's policies, loading and compiling what is not cached. */
  async load(rec: AgentRecord): Promise<RoundPolicySet> {
    const ima = rec.imaPolicyId === null ? null : await this.#loadRuntime(rec.imaPolicyId)
    const mb = rec.mbPolicyId === null ? null : await this.#loadMb(rec.mbPolicyId)
    return this.#set(rec, ima, mb)
  }

  /** Forgets every policy (a policy was changed through this instance). */
  invalidate(): void {
    for (const e of this.#runtime.values()) e.release?.()
    this.#runtime.clear()
    this.#mb.clear()
  }

  /** Forgets the policies whose stored version is no longer the cached one. */
  refresh(versions: { ima: Map<number, number>; mb: Map<number, number> }): void {
    for (const [id, e] of this.#runtime) {
      if (versions.ima.get(id) === e.version) continue
      e.release?.()
      this.#runtime.delete(id)
    }
    for (const [id, e] of this.#mb) if (versions.mb.get(id) !== e.version) this.#mb.delete(id)
  }

  #set(rec: AgentRecord, ima: RuntimeEntry | null, mb: MbEntry | null): RoundPolicySet {
    if (rec.tenantKeyring === undefined) {
      rec.tenantKeyring = tenantKeyringOf(rec.imaSignVerificationKeys)
      // as for a policy's verification keys: a key that does not load is named, never dropped silently
      for (const err of rec.tenantKeyring?.skipped ?? []) {
        this.#o.log.error('agent IMA verification key does not load', {
          agent_id: rec.id,
          error: err,
        })
      }
    }
    const policies: RoundPolicies = {
      ima: ima?.compiled ?? null,
      mb: mb?.text ?? null,
      mbActive: mb?.active ?? false,
      mbRefstate: mb?.refstate,
      mbKey: mb?.key,
      tenantKeyring: rec.tenantKeyring,
    }
    if (ima === null) return { policies, imaKey: null, imaText: NO_TEXT }
    return { policies, imaKey: ima.key, imaText: () => ima.text }
  }

  async #loadRuntime(id: number): Promise<RuntimeEntry> {
    const cached = this.#runtime.get(id)
    if (cached !== undefined) return cached
    const row = await this.#o.store.getAllowlistById(id)
    const version = row?.version ?? 0
    const e: RuntimeEntry = { version, compiled: null, text: undefined, key: `${id}:${version}` }
    // every stored policy is evaluated as stored, the empty one (generator 1, stored for agents
    // enrolled without a policy) included: upstream evaluates `EMPTY_RUNTIME_POLICY` too
    if (row?.ima_policy) {
      try {
        const lease = this.#compile(row.ima_policy)
        e.compiled = lease.policy
        e.release = () => lease.release()
        e.text = row.ima_policy
        // upstream `ImaKeyring.from_string` logs each key it cannot load and skips it
        for (const err of lease.policy.verificationKeys?.skipped ?? []) {
          this.#o.log.error('runtime policy verification key does not load', {
            name: row.name,
            error: err,
          })
        }
      } catch (err) {
        this.#o.log.error('stored runtime policy does not load', { name: row.name, error: err })
      }
    }
    this.#runtime.set(id, e)
    return e
  }

  async #loadMb(id: number): Promise<MbEntry> {
    const cached = this.#mb.get(id)
    if (cached !== undefined) return cached
    const row = await this.#o.store.getMbPolicyById(id)
    const version = row?.version ?? 0
    const e: MbEntry = {
      ...parseMbPolicy(row?.mb_policy ?? null),
      version,
      key: `${id}:${version}`,
    }
    this.#mb.set(id, e)
    return e
  }
}
