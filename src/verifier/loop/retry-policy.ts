/**
 * When to ask an agent again after a communication failure: upstream's `retry_interval`,
 * `exponential_backoff` and `max_retries` (`cloud_verifier_tornado.py: process_agent`), and which
 * agent answers count as communication failures at all. Pure: no clock, no I/O.
 *
 * @module
 */
import { retryTime } from '../../protocol/retry-time.ts'

/** The retry settings of the loop (durations in ms). */
export interface RetrySettings {
  /** `[verifier] max_retries`. */
  maxRetries: number
  /** `[verifier] retry_interval`, in ms. */
  retryIntervalMs: number
  /** `[verifier] exponential_backoff`. */
  exponentialBackoff: boolean
}

/** Give up (the agent FAILS), or retry as attempt `attempt` after `delayMs`. */
export type RetryDecision =
  { kind: 'give-up' } | { kind: 'retry'; attempt: number; delayMs: number }

/** The decision after a communication failure, given the retries already made. */
export function decideRetry(retries: number, s: RetrySettings): RetryDecision {
  if (retries >= s.maxRetries) return { kind: 'give-up' }
  const attempt = retries + 1
  const delayMs = retryTime(s.exponentialBackoff, s.retryIntervalMs / 1000, attempt) * 1000
  return { kind: 'retry', attempt, delayMs }
}

/** How a non-200 agent answer is handled. */
export type AnswerKind = 'retry' | 'version' | 'fatal'

/** Statuses upstream treats as "agent not reachable" (timeouts and server errors). */
const TRANSIENT_STATUSES: ReadonlySet<number> = new Set([408, 500, 502, 503, 504, 599])

/**
 * A non-200 answer: `retry` for transient failures, `version` when the agent refused our API
 * version (400 with "API version not supported"), `fatal` otherwise.
 */
export function classifyAnswer(status: number, body: unknown): AnswerKind {
  if (TRANSIENT_STATUSES.has(status)) return 'retry'
  if (status === 400) {
    const s = (body as { status?: unknown } | null)?.status
    if (typeof s === 'string' && s.includes('API version not supported')) return 'version'
  }
  return 'fatal'
}
