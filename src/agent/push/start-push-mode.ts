/**
 * Push mode's start (`[agent] mode = push`): after registration, the attestation loop runs in
 * the background against `verifier_url`, trusting `verifier_tls_ca_cert`; the agent listens on
 * no port. Stopping aborts the loop's sleeps and requests and waits for it to end.
 *
 * @module
 */

import { getLogger } from '../../log/logger.ts'
import type { AgentConfig } from '../config/load-agent-config.ts'
import { type MeasurementLogs, readBootTime } from '../read-measurement-logs.ts'
import { readCaFile } from '../read-ca-file.ts'
import type { HardwareAgentTpm } from '../tpm/hardware-agent-tpm.ts'
import { PushAttestationLoop } from './push-attestation-loop.ts'
import { SessionAuth } from './session-auth.ts'
import { abortableSleep, type FetchLike, VerifierHttp } from './verifier-http.ts'

const log = getLogger('push_agent')

/** A running push loop. */
export interface PushMode {
  /** Stops the loop (aborts a sleep or request in progress) and waits for it. */
  stop(): Promise<void>
}

/**
 * Starts the push attestation loop for `agentId`, with the logs opened before `run_as`.
 *
 * @throws {AgentError} `ERR_AGENT_CONFIG` when `verifier_tls_ca_cert` is missing.
 */
export function startPushMode(
  config: AgentConfig,
  agentId: string,
  tpm: HardwareAgentTpm,
  logs: MeasurementLogs,
  opts: { fetch?: FetchLike; signal?: AbortSignal } = {},
): PushMode {
  const p = config.push
  const caPem =
    opts.fetch === undefined ? readCaFile('verifier_tls_ca_cert', p.verifierCaPath) : undefined
  const stopping = new AbortController()
  const signal =
    opts.signal === undefined ? stopping.signal : AbortSignal.any([stopping.signal, opts.signal])
  const sleep = abortableSleep(signal)
  const http = new VerifierHttp({
    backoff: p.backoff,
    caPem,
    fetch: opts.fetch,
    signal,
    sleep,
    warn: (msg, fields) => log.warn(msg, fields),
  })
  const auth = new SessionAuth({
    http,
    verifierUrl: p.verifierUrl,
    agentId,
    tpm,
    info: (msg, fields) => log.info(msg, fields),
  })
  const loop = new PushAttestationLoop({
    agentId,
    verifierUrl: p.verifierUrl,
    http,
    auth,
    sources: {
      tpm,
      ima: logs.ima,
      uefiLog: logs.uefiLog,
      bootTime: readBootTime(),
      serverIdentifier: p.serverIdentifier,
      uefiEvidenceVersion: p.uefiEvidenceVersion,
    },
    intervalSeconds: p.intervalSeconds,
    sleep,
    log: (level, msg, fields) => (level === 'info' ? log.info(msg, fields) : log.warn(msg, fields)),
  })
  log.info('push mode: attesting to the verifier (no listening port)', {
    agent_id: agentId,
    verifier_url: p.verifierUrl,
  })
  const done = loop.run(signal).catch((err: unknown) => {
    log.error('push loop stopped', { error: err instanceof Error ? err.message : String(err) })
  })
  return {
    async stop() {
      stopping.abort()
      await done
    },
  }
}
