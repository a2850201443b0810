/**
 * The verifier's `[verifier]` configuration converted once, at start, into the typed settings the
 * loop runs on: durations in ms (`…Ms`), defaults applied, so units cannot drift further down.
 *
 * @module
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { VerifierConfig } from '../../config/index.ts'
import type { RetrySettings } from './retry-policy.ts'

/** Overrides beyond the configuration (tests, benchmarks); see `StartVerifierOptions`. */
export interface SettingsOverrides {
  instanceId?: string
  maxInFlight?: number
  flushMs?: number
  leaseMs?: number
}

/** The settings of the attestation loop and its connections. */
export interface VerifierSettings extends RetrySettings {
  /** `[verifier] uuid`: the agents this verifier (of possibly several instances) serves. */
  verifierId: string
  /** This process's lease identity. */
  instanceId: string
  /** `quote_interval`: between a passing round and the next. */
  quoteIntervalMs: number
  /** `request_timeout`: per agent request. */
  requestTimeoutMs: number
  /** Plain HTTP to agents when false (`enable_agent_mtls = False`). */
  agentMtls: boolean
  /** Rounds in flight at most. */
  maxInFlight: number
  /** Period of the batched snapshot writes. */
  flushMs: number
  /** Lease length; the lease tick runs every third of it. */
  leaseMs: number
  /** How long an idle agent connection is kept. */
  agentIdleMs: number
}

/**
 * The settings of `[verifier]`. The instance id defaults to `<host>/<ip>:<port>` for a fixed port,
 * so a process restarted on the same address takes its agents back at once; random for port 0.
 */
export function verifierSettings(
  v: VerifierConfig['verifier'],
  overrides: SettingsOverrides = {},
): VerifierSettings {
  const quoteIntervalMs = Math.max(0, v.quote_interval * 1000)
  return {
    verifierId: v.uuid,
    instanceId:
      overrides.instanceId ??
      (v.port !== 0 ? `${hostname()}/${v.ip}:${v.port}` : `${hostname()}/${randomUUID()}`),
    quoteIntervalMs,
    retryIntervalMs: v.retry_interval * 1000,
    maxRetries: v.max_retries,
    exponentialBackoff: v.exponential_backoff,
    requestTimeoutMs: v.request_timeout * 1000,
    agentMtls: v.enable_agent_mtls,
    maxInFlight: overrides.maxInFlight ?? 512,
    flushMs: overrides.flushMs ?? 200,
    leaseMs: overrides.leaseMs ?? Math.max(3 * quoteIntervalMs, 6000),
    agentIdleMs: Math.max(30_000, 3 * quoteIntervalMs),
  }
}
