/**
 * Our push agent's attestation cycle as a test client: an agent TPM on swtpm
 * ({@link openSwtpmAgentTpm}) and the push loop wired to any verifier
 * ({@link pushAgentHarness}: a `fetch` handler in-process, or a real `https://` URL with its CA).
 * Sleeps are recorded, not waited, so a test drives one cycle at a time with `cycle()`. The
 * verifier-side push tests can use it as the client the rust-keylime push agent would be; enrol
 * the agent with `ak_tpm` = base64 of `tpm.akTpm2b`.
 *
 * @module
 */
import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import { payloadKeyFrom } from '../../src/agent/load-or-create-nk.ts'
import type { EvidenceSources, PushTpm } from '../../src/agent/push/build-capabilities.ts'
import {
  type CycleOutcome,
  PushAttestationLoop,
} from '../../src/agent/push/push-attestation-loop.ts'
import { SessionAuth } from '../../src/agent/push/session-auth.ts'
import { type Backoff, type FetchLike, VerifierHttp } from '../../src/agent/push/verifier-http.ts'
import {
  type HardwareAgentTpm,
  openHardwareAgentTpm,
} from '../../src/agent/tpm/hardware-agent-tpm.ts'
import { TpmAccess } from '../../src/agent/tpm/tpm-access.ts'
import type { BareSwtpm } from './swtpm.ts'

/** Opens the agent's TPM identity (EK, AK) on a running swtpm; AK blobs go to `dir`. */
export function openSwtpmAgentTpm(
  swtpm: Pick<BareSwtpm, 'port'>,
  dir: string,
  alg: 'rsa' | 'ecc' = 'rsa',
): Promise<HardwareAgentTpm> {
  return openHardwareAgentTpm({
    access: TpmAccess.forTcti({ kind: 'swtpm', host: '127.0.0.1', port: swtpm.port }),
    hashAlg: 'sha256',
    encAlg: alg,
    signAlg: alg === 'rsa' ? 'rsassa' : 'ecdsa',
    agentDataPath: join(dir, `agent_data_${alg}.json`),
    nk: payloadKeyFrom(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey),
    startup: true,
  })
}

/** Options of {@link pushAgentHarness}. */
export interface PushAgentHarnessOptions {
  /** The agent TPM. */
  tpm: PushTpm
  /** The agent id. */
  agentId: string
  /** `verifier_url` (default `https://verifier.test:8881`, for in-process handlers). */
  verifierUrl?: string
  /** The verifier, in-process (default: real `fetch` trusting `caPem`). */
  fetch?: FetchLike
  /** CA of the verifier's TLS certificate, for a real listener. */
  caPem?: string
  /** Request retries (default 1 ms delays, 3 retries). */
  backoff?: Backoff
  /** `attestation_interval_seconds` (default 60). */
  intervalSeconds?: number
  /** Logs and the rest of the evidence sources. */
  sources?: Partial<Omit<EvidenceSources, 'tpm'>>
  /** Clock for the token's renewal. */
  now?: () => number
}

/** The push loop with its parts. */
export interface PushAgentHarness {
  /** The client. */
  http: VerifierHttp
  /** The session. */
  auth: SessionAuth
  /** The loop. */
  loop: PushAttestationLoop
  /** Every sleep asked for (request retries and waits between cycles), in ms. */
  sleeps: number[]
  /** One Negotiating → Attesting pass. */
  cycle(): Promise<CycleOutcome>
}

/** Wires the push loop to a verifier. */
export function pushAgentHarness(opts: PushAgentHarnessOptions): PushAgentHarness {
  const verifierUrl = opts.verifierUrl ?? 'https://verifier.test:8881'
  const sleeps: number[] = []
  const sleep = async (ms: number) => {
    sleeps.push(ms)
  }
  const http = new VerifierHttp({
    backoff: opts.backoff ?? { initialDelayMs: 1, maxRetries: 3, maxDelayMs: 1 },
    fetch: opts.fetch,
    caPem: opts.caPem,
    sleep,
  })
  const auth = new SessionAuth({
    http,
    verifierUrl,
    agentId: opts.agentId,
    tpm: opts.tpm,
    now: opts.now,
  })
  const loop = new PushAttestationLoop({
    agentId: opts.agentId,
    verifierUrl,
    http,
    auth,
    sources: { serverIdentifier: 'ak', uefiEvidenceVersion: '2.1', ...opts.sources, tpm: opts.tpm },
    intervalSeconds: opts.intervalSeconds ?? 60,
    sleep,
  })
  return { http, auth, loop, sleeps, cycle: () => loop.cycle() }
}
