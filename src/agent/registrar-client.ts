/**
 * Registration with a Keylime registrar exactly as rust-keylime does it (wire-formats §2,
 * `agent_registration.rs`, `registrar_client.rs`): `GET /version`, use the registrar's current
 * version when enabled here, else the newest common one (without `/version`: try the enabled
 * versions newest first); `POST /v{v}/agents/{uuid}` with EK, AK, EK certificate, mTLS
 * certificate and contact address; TPM2_ActivateCredential on the returned blob;
 * `PUT /v{v}/agents/{uuid}` with auth_tag = hex HMAC-SHA384(key = ASCII base64(secret), uuid).
 *
 * @module
 */

import {
  AGENT_API_VERSIONS,
  compareApiVersions,
  newestCommonVersion,
} from '../protocol/api-versions.ts'
import { computeAuthTag } from '../tpm/hmac-proof.ts'
import type { AgentTpm } from './agent-tpm.ts'
import { AgentError } from './errors.ts'

/** Options of {@link registerAgent}. */
export interface RegisterOptions {
  /** Registrar base URL, e.g. `http://127.0.0.1:8890`. */
  registrarUrl: string
  /** Agent UUID. */
  uuid: string
  /** The TPM identity (EK, AK, EK certificate) and ActivateCredential. */
  tpm: Pick<AgentTpm, 'ekTpm2b' | 'akTpm2b' | 'ekCertPem' | 'activateCredential'>
  /** `contact_ip`. */
  contactIp: string
  /** `contact_port`. */
  contactPort: number
  /** The agent's server certificate PEM, `disabled`, or undefined to leave it out (push mode). */
  mtlsCertPem: string | undefined
  /** CA certificates (PEM) for an `https://` registrar (`registrar_tls_ca_cert`). */
  caPem?: string
  /** Enabled API versions (default all). */
  apiVersions?: readonly string[]
  /** Per-request timeout (default 15 s). */
  timeoutMs?: number
}

interface Reply {
  ok: boolean
  status: number
  body: unknown
}

async function request(
  url: string,
  method: string,
  body: unknown,
  timeoutMs: number,
  caPem?: string,
): Promise<Reply> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
    ...(caPem === undefined ? {} : { tls: { ca: caPem } }),
  })
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined
  } catch {
    parsed = undefined
  }
  return { ok: res.ok, status: res.status, body: parsed }
}

/** Versions to try, in order (rust-keylime's negotiation). */
async function candidateVersions(
  base: string,
  enabled: readonly string[],
  timeoutMs: number,
  caPem: string | undefined,
): Promise<string[]> {
  let current: string | undefined
  let supported: string[] | undefined
  try {
    const res = await request(`${base}/version`, 'GET', undefined, timeoutMs, caPem)
    const r = (
      res.body as { results?: { current_version?: unknown; supported_versions?: unknown } }
    )?.results
    if (res.ok && typeof r?.current_version === 'string') {
      current = r.current_version
      if (Array.isArray(r.supported_versions)) supported = r.supported_versions.map(String)
    }
  } catch {
    current = undefined // no /version: try every enabled version, newest first
  }
  const newestFirst = [...enabled].sort((a, b) => compareApiVersions(b, a))
  if (current === undefined) return newestFirst
  if (enabled.includes(current)) return [current]
  const common = newestCommonVersion(enabled, supported ?? [])
  if (common === undefined) {
    throw new AgentError(
      'ERR_AGENT_REGISTRATION',
      `registrar API versions [${(supported ?? [current]).join(', ')}] and agent [${enabled.join(', ')}] are incompatible`,
    )
  }
  return [common]
}

/**
 * Registers and activates the agent. Returns the registrar API version used.
 *
 * @throws {AgentError} `ERR_AGENT_REGISTRATION` on any refusal (HTTP status in the message);
 *   TPM errors from ActivateCredential pass through.
 */
export async function registerAgent(opts: RegisterOptions): Promise<{ apiVersion: string }> {
  const base = opts.registrarUrl.replace(/(?<!\/)\/+$/, '') // linear, unlike /\/+$/
  const timeoutMs = opts.timeoutMs ?? 15_000
  const enabled = opts.apiVersions ?? AGENT_API_VERSIONS
  const body = {
    aik_tpm: Buffer.from(opts.tpm.akTpm2b).toString('base64'),
    ek_tpm: Buffer.from(opts.tpm.ekTpm2b).toString('base64'),
    ekcert: opts.tpm.ekCertPem ?? '',
    iak_cert: null,
    idevid_cert: null,
    ip: opts.contactIp,
    ...(opts.mtlsCertPem === undefined ? {} : { mtls_cert: opts.mtlsCertPem }),
    port: opts.contactPort,
  }
  let lastError: unknown
  for (const v of await candidateVersions(base, enabled, timeoutMs, opts.caPem)) {
    const res = await request(
      `${base}/v${v}/agents/${opts.uuid}`,
      'POST',
      body,
      timeoutMs,
      opts.caPem,
    )
    if (res.status === 403) {
      throw new AgentError(
        'ERR_AGENT_REGISTRATION',
        `registrar refused ${opts.uuid} (403): its TPM identity changed; delete the agent at the registrar first`,
      )
    }
    if (!res.ok) {
      lastError = new AgentError(
        'ERR_AGENT_REGISTRATION',
        `register ${opts.uuid} via v${v}: HTTP ${res.status}`,
      )
      continue
    }
    const blobB64 = (res.body as { results?: { blob?: unknown } } | undefined)?.results?.blob
    if (typeof blobB64 !== 'string') {
      throw new AgentError('ERR_AGENT_REGISTRATION', `registrar answered no blob for ${opts.uuid}`)
    }
    const secret = await opts.tpm.activateCredential(Buffer.from(blobB64, 'base64'))
    const authTag = computeAuthTag(Buffer.from(secret).toString('base64'), opts.uuid)
    secret.fill(0)
    const act = await request(
      `${base}/v${v}/agents/${opts.uuid}`,
      'PUT',
      { auth_tag: authTag },
      timeoutMs,
      opts.caPem,
    )
    if (!act.ok) {
      throw new AgentError(
        'ERR_AGENT_REGISTRATION',
        `activate ${opts.uuid} via v${v}: HTTP ${act.status}`,
      )
    }
    return { apiVersion: v }
  }
  throw lastError ?? new AgentError('ERR_AGENT_REGISTRATION', 'no registrar API version in common')
}
