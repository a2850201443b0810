/**
 * `-c add` and `-c update` (keylime-api.md §4.3; upstream `Tenant.init_add`, `do_quote`,
 * `do_cvadd`, `do_verify`):
 *
 * 1. Registrar lookup (AK, EK, EK certificate, mTLS certificate, contact address).
 * 2. Everything local is prepared before any side effect: policies (`build-policies.ts`), the
 *    payload and K/U/V (`-f`, `-k`/`-p`, `--cert`), the size limit.
 * 3. Pull mode: agent API negotiation over mTLS pinned to the registered `mtls_cert` (`disabled` →
 *    plain HTTP with a warning), identity quote with a 20-character nonce checked by
 *    `check-agent-identity.ts`, then U (RSA-OAEP to the NK) with `auth_tag` and the payload to
 *    `POST /keys/ukey`. Push mode (`--push-model`) skips all agent contact: no version
 *    negotiation, identity quote, payload or `--verify`; the EK checks (`require_ek_cert`,
 *    `ek_check_script`) still run on the registrar's record, and V is null, which is what makes
 *    the verifier enrol the agent for the push model.
 * 4. `POST /agents/{id}` on the verifier with V and the policies (§1.3 body), then polling until
 *    the verifier reports the agent (progress on stderr).
 * 5. `--verify`: `GET /keys/verify?challenge=` until the agent's HMAC matches (constant time),
 *    up to `max_retries`; on failure the agent is stopped on the verifier (`PUT /stop`, upstream's
 *    rollback) and the command fails with exit 5.
 *
 * `update` deletes the agent from the verifier (tolerating its absence) after the preparation and
 * then adds it as above.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { formatHostPort } from '../http/format-host-port.ts'
import type { MtlsResponse } from '../http/parse-mtls-response.ts'
import { agentStateName } from '../protocol/agent-states.ts'
import { type BuiltPolicies, buildPolicies } from './build-policies.ts'
import { checkAgentIdentity, checkEkTrust, type IdentityQuote } from './check-agent-identity.ts'
import { inputError, TenantError, usageError } from './errors.ts'
import {
  authTag,
  checkKeyHmac,
  encryptPayload,
  encryptToNk,
  generatePayloadKeys,
  type PayloadKeys,
  xorBytes,
} from './payload-keys.ts'
import { randomPassword } from '../protocol/random-password.ts'
import { formatMask, tpmPolicyToJson } from '../protocol/tpm-policy.ts'
import {
  type CommandResult,
  fetchRegistrarAgent,
  type RegistrarAgent,
} from './registrar-commands.ts'
import { retryTime } from '../protocol/retry-time.ts'
import {
  negotiateVersion,
  TENANT_API_VERSIONS,
  TENANT_CURRENT_VERSION,
  type TenantContext,
} from './tenant-context.ts'
import { pyJson } from './tenant-output.ts'
import { deleteFromVerifier, stopOnVerifier, waitUntilAdded } from './verifier-commands.ts'

/** The secret part of an enrolment (never printed). */
interface Delivery {
  keys: PayloadKeys | undefined
  payload: string | undefined
  metadata: Record<string, unknown>
  revocationKey: string
  /** What was delivered, for the result (no secrets). */
  kind: 'none' | 'file' | 'keyfile' | 'cert'
}

function readInputFile(path: string, option: string): Buffer {
  try {
    return readFileSync(path)
  } catch (e) {
    throw inputError(
      `cannot read ${option} file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      `check the path given to ${option}`,
      e,
    )
  }
}

/** `-k` key file: base64 lines K, U, V (upstream reads them in that order; U ⊕ V must be K). */
export function parseKeyFile(text: string, path: string): PayloadKeys {
  const lines = text.split(/\r?\n/).map((l) => l.trim())
  const [k, u, v] = lines.slice(0, 3).map((l) => Buffer.from(l, 'base64'))
  const ok = (b: Buffer | undefined): b is Buffer =>
    b !== undefined && (b.byteLength === 32 || b.byteLength === 16)
  if (!ok(k) || !ok(u) || !ok(v) || u.byteLength !== k.byteLength || v.byteLength !== k.byteLength)
    throw inputError(
      `key file ${path} must hold three base64 keys of 16 or 32 bytes (K, U, V lines)`,
      'use the content_keys.txt written by keylime_userdata_encrypt',
    )
  if (!xorBytes(u, v).equals(k))
    throw inputError(
      `key file ${path} is inconsistent: the second and third keys do not combine to the first`,
      'use the content_keys.txt written by keylime_userdata_encrypt',
    )
  return { k, u, v }
}

async function prepareDelivery(ctx: TenantContext): Promise<Delivery> {
  const o = ctx.opts
  const d: Delivery = {
    keys: undefined,
    payload: undefined,
    metadata: {},
    revocationKey: '',
    kind: 'none',
  }
  if (o.keyFile !== undefined) {
    d.keys = parseKeyFile(readInputFile(o.keyFile, '-k/--key').toString('utf8'), o.keyFile)
    if (o.payloadFile !== undefined)
      d.payload = readInputFile(o.payloadFile, '-p/--payload').toString('utf8').trim()
    d.kind = 'keyfile'
  } else if (o.file !== undefined) {
    const plain = readInputFile(o.file, '-f/--file')
    d.keys = generatePayloadKeys()
    d.payload = encryptPayload(d.keys.k, plain)
    d.kind = 'file'
  } else if (o.caDir !== undefined) {
    const { buildCertPackage } = await import('./cert-package.ts')
    const pkg = await buildCertPackage(ctx, o.caDir, o.include)
    d.keys = generatePayloadKeys()
    d.payload = encryptPayload(d.keys.k, pkg.zip)
    d.metadata = pkg.metadata
    d.revocationKey = pkg.revocationKey
    d.kind = 'cert'
    ctx.out.info(
      `Certificate package for agent ${o.agentUuid} from ${pkg.caDir} (serial ${pkg.metadata.cert_serial})`,
    )
  }
  const max = ctx.cfg.max_payload_size
  if (d.payload !== undefined && d.payload.length > max) {
    throw inputError(
      `Payload size ${d.payload.length} exceeds max size ${max}`,
      'deliver a smaller payload or raise [tenant] max_payload_size (the agent has its own limit)',
    )
  }
  return d
}

/** How the tenant reaches one agent. */
interface AgentLink {
  base: string
  pinned: string | undefined
  version: string
}

async function agentRequest(
  ctx: TenantContext,
  link: Omit<AgentLink, 'version'>,
  path: string,
  req: { method?: 'GET' | 'POST'; json?: unknown } = {},
): Promise<MtlsResponse> {
  const client = await ctx.client()
  try {
    return await client.request(`${link.base}${path}`, { ...req, pinnedCert: link.pinned })
  } catch (e) {
    const err = e as { code?: string; message?: string }
    if (err.code === 'ERR_PEER_UNREACHABLE') {
      const tls = /TLS|reset|certificate/i.test(err.message ?? '')
      throw new TenantError(
        'ERR_TENANT_UNREACHABLE',
        `agent ${ctx.opts.agentUuid}: ${err.message}`,
        {
          hint: tls
            ? "the agent may not recognise the tenant's client certificate: check the agent's trusted_client_ca (cv_ca/cacert.crt)"
            : 'is the agent running? check its address (-t/-tp or the registered ip/port)',
          cause: e,
        },
      )
    }
    throw e
  }
}

/** Agent API version: `--agent-api-version`, else `GET /version` negotiation, else current. */
async function negotiateAgent(
  ctx: TenantContext,
  link: Omit<AgentLink, 'version'>,
): Promise<string> {
  const forced = ctx.opts.agentApiVersion
  const res = await agentRequest(ctx, link, '/version')
  if (forced !== undefined) return forced
  const r = (res.results ?? {}) as { supported_versions?: unknown; supported_version?: unknown }
  const theirs = Array.isArray(r.supported_versions)
    ? r.supported_versions
    : typeof r.supported_version === 'string'
      ? [r.supported_version]
      : undefined
  if (res.status !== 200 || theirs === undefined) {
    ctx.out.warn(`Could not detect supported API version. Defaulting to ${TENANT_CURRENT_VERSION}`)
    return TENANT_CURRENT_VERSION
  }
  const v = negotiateVersion(theirs)
  if (v === undefined)
    throw new TenantError(
      'ERR_TENANT_REJECTED',
      `Agent ${ctx.opts.agentUuid} has no compatible API version. Agent supports: ${theirs.join(', ')}, Tenant supports: ${TENANT_API_VERSIONS.join(', ')}`,
      { hint: 'pass --agent-api-version to force one' },
    )
  ctx.out.info(`Negotiated API version ${v} with agent ${ctx.opts.agentUuid}`)
  return v
}

/** Identity quote with retries on unreachable agents (upstream retries on 503/504/no answer). */
async function identityQuote(
  ctx: TenantContext,
  link: AgentLink,
  nonce: string,
): Promise<IdentityQuote> {
  const uuid = ctx.opts.agentUuid
  const max = ctx.cfg.max_retries
  for (let tries = 1; ; tries++) {
    let res: MtlsResponse
    try {
      res = await agentRequest(ctx, link, `/v${link.version}/quotes/identity?nonce=${nonce}`)
    } catch (e) {
      if (!(e instanceof TenantError) || e.code !== 'ERR_TENANT_UNREACHABLE' || tries >= max)
        throw e
      const wait = retryTime(ctx.cfg.exponential_backoff, ctx.cfg.retry_interval, tries)
      ctx.out.progress(
        `Tenant connection to agent ${uuid} refused ${tries}/${max} times, trying again in ${wait} seconds...`,
      )
      await Bun.sleep(wait * 1000)
      continue
    }
    if (res.status !== 200)
      throw new TenantError(
        'ERR_TENANT_REJECTED',
        `TPM Quote command response: ${res.status} Unexpected response from agent ${uuid}`,
        { httpStatus: res.status },
      )
    const r = res.results as Partial<IdentityQuote> | null
    if (
      !r ||
      typeof r.quote !== 'string' ||
      typeof r.pubkey !== 'string' ||
      typeof r.hash_alg !== 'string' ||
      typeof r.enc_alg !== 'string' ||
      typeof r.sign_alg !== 'string'
    )
      throw new TenantError(
        'ERR_TENANT_REJECTED',
        `unexpected identity quote answer from agent ${uuid}`,
      )
    return r as IdentityQuote
  }
}

/** `--verify`: the agent proves it derived K (HMAC over a fresh challenge). */
async function verifyKeyDerivation(ctx: TenantContext, link: AgentLink, k: Buffer): Promise<void> {
  const uuid = ctx.opts.agentUuid
  const max = ctx.cfg.max_retries
  const challenge = randomPassword(20)
  for (let tries = 1; ; tries++) {
    let res: MtlsResponse | undefined
    try {
      res = await agentRequest(ctx, link, `/v${link.version}/keys/verify?challenge=${challenge}`)
    } catch (e) {
      if (!(e instanceof TenantError) || e.code !== 'ERR_TENANT_UNREACHABLE') throw e
      res = undefined
    }
    const mac = res?.status === 200 ? (res.results as { hmac?: unknown } | null)?.hmac : undefined
    if (checkKeyHmac(k, challenge, mac)) {
      ctx.out.info(`Successful key derivation for agent ${uuid}`)
      return
    }
    if (tries >= max) {
      throw new TenantError(
        'ERR_TENANT_VERIFICATION',
        `Failed key derivation for agent ${uuid} after ${tries} tries${res ? ` (last answer ${res.status})` : ' (agent unreachable)'}`,
        {
          hint: 'the agent did not derive K: check that the verifier delivered V (cvstatus) and the agent log',
        },
      )
    }
    const wait = retryTime(ctx.cfg.exponential_backoff, ctx.cfg.retry_interval, tries)
    ctx.out.progress(
      `Key derivation not yet complete for agent ${uuid} at try ${tries}/${max}, trying again in ${wait} seconds...`,
    )
    await Bun.sleep(wait * 1000)
  }
}

/**
 * The §1.3 body of `POST /agents/{id}`. For a push enrolment `v` is null; the contact address is
 * sent as for pull (command line, else the registrar's, else null) as upstream does, and a push
 * verifier ignores it.
 */
function enrolmentBody(
  ctx: TenantContext,
  reg: RegistrarAgent,
  p: BuiltPolicies,
  d: Delivery,
  agentIp: string | undefined,
  agentPort: number | undefined,
  version: string,
): Record<string, unknown> {
  return {
    v: d.keys ? d.keys.v.toString('base64') : null,
    cloudagent_ip: ctx.opts.cvAgentIp ?? agentIp ?? null,
    cloudagent_port: agentPort ?? null,
    verifier_ip: ctx.verifierIp,
    verifier_port: ctx.verifierPort,
    tpm_policy: pyJson(tpmPolicyToJson(p.tpmPolicy)),
    runtime_policy: p.runtimePolicy,
    runtime_policy_name: p.runtimePolicyName,
    runtime_policy_key: p.runtimePolicyKey,
    mb_policy: p.mbPolicy,
    mb_policy_name: p.mbPolicyName,
    ima_sign_verification_keys: p.imaSignVerificationKeys,
    metadata: pyJson(d.metadata),
    revocation_key: d.revocationKey,
    accept_tpm_hash_algs: ctx.cfg.accept_tpm_hash_algs,
    accept_tpm_encryption_algs: ctx.cfg.accept_tpm_encryption_algs,
    accept_tpm_signing_algs: ctx.cfg.accept_tpm_signing_algs,
    ak_tpm: reg.aik_tpm,
    mtls_cert: reg.mtls_cert ?? null,
    supported_version: version,
  }
}

/** Runs `add` or `update`. */
export async function addAgent(ctx: TenantContext): Promise<CommandResult> {
  const o = ctx.opts
  const uuid = o.agentUuid
  const policies = await buildPolicies(ctx)
  const reg = await fetchRegistrarAgent(ctx)
  const agentIp = o.agentIp ?? (reg.ip || undefined)
  const regPort = reg.port === null || reg.port === undefined ? undefined : Number(reg.port)
  const agentPort = o.agentPort ?? (Number.isInteger(regPort) && regPort! > 0 ? regPort : undefined)
  const delivery = await prepareDelivery(ctx)
  // Reach the verifier before touching the agent: a wrong -v fails without side effects.
  await ctx.version('verifier')

  let version = o.agentApiVersion ?? TENANT_CURRENT_VERSION
  let link: AgentLink | undefined
  if (!o.pushModel) {
    if (agentIp === undefined || agentPort === undefined)
      throw usageError(
        `the address of agent ${uuid} is unknown: the registrar has no ip/port`,
        'pass -t/--targethost and -tp/--targetport, or use --push-model',
      )
    const mtls = reg.mtls_cert
    let plain = false
    if (mtls === 'disabled' || !ctx.cfg.enable_agent_mtls) {
      plain = true
      ctx.out.warn(
        `mTLS for agent ${uuid} is disabled: the identity of each node will be based on the properties of the TPM only. Unless you have strict control of your network, it is strongly advised that remote code execution should be disabled, by setting "payload_script=" and "extract_payload_zip=False" under "[agent]" in agent configuration file.`,
      )
    } else if (typeof mtls !== 'string' || !mtls.includes('BEGIN CERTIFICATE')) {
      throw new TenantError(
        'ERR_TENANT_REJECTED',
        `agent ${uuid} registered without an mTLS certificate (an API 1.0 agent), which keylime-ts does not support`,
        { hint: 'upgrade the agent, or register it with mtls_cert = "disabled"' },
      )
    }
    const base = `${plain ? 'http' : 'https'}://${formatHostPort(agentIp, agentPort)}`
    const partial = { base, pinned: plain ? undefined : (mtls as string) }
    version = await negotiateAgent(ctx, partial)
    link = { ...partial, version }
  }

  // Before `update` deletes anything: a refused EK leaves the old enrolment in place.
  if (o.pushModel) {
    ctx.out.info(
      `Push model: agent ${uuid} is not contacted; its AK is the one the registrar activated`,
    )
    checkEkTrust(ctx, reg)
  }

  if (o.command === 'update') {
    const r = await deleteFromVerifier(ctx, true)
    ctx.out.info(
      `Agent ${uuid} ${r === 'deleted' ? 'deleted from' : 'was not on'} ${ctx.label('verifier')}`,
    )
  }

  if (link !== undefined) {
    const nonce = randomPassword(20)
    const answer = await identityQuote(ctx, link, nonce)
    checkAgentIdentity(ctx, reg, answer, nonce)
    if (delivery.keys !== undefined) {
      const body: Record<string, unknown> = {
        encrypted_key: encryptToNk(answer.pubkey, delivery.keys.u),
        auth_tag: authTag(delivery.keys.k, uuid),
      }
      if (delivery.payload !== undefined) body.payload = delivery.payload
      const res = await agentRequest(ctx, link, `/v${link.version}/keys/ukey`, {
        method: 'POST',
        json: body,
      })
      if (res.status !== 200)
        throw new TenantError(
          'ERR_TENANT_REJECTED',
          `Posting of encrypted U to agent ${uuid} failed with response code ${res.status}`,
          { httpStatus: res.status, hint: 'check the agent log (payload size limit, key format)' },
        )
    }
  }

  const res = await ctx.call(
    'verifier',
    'POST',
    `agents/${encodeURIComponent(uuid)}`,
    enrolmentBody(ctx, reg, policies, delivery, agentIp, agentPort, version),
  )
  if (res.status === 409)
    throw ctx.httpError('verifier', res, `adding agent ${uuid}`, 'Run "delete" or "update" first.')
  if (res.status !== 200)
    throw ctx.httpError(
      'verifier',
      res,
      `adding agent ${uuid}`,
      'check the policies and the verifier log',
    )
  const status = await waitUntilAdded(ctx)

  let verified = false
  if (o.verify && link !== undefined && delivery.keys !== undefined) {
    try {
      await verifyKeyDerivation(ctx, link, delivery.keys.k)
      verified = true
    } catch (e) {
      try {
        await stopOnVerifier(ctx)
      } catch (stopErr) {
        ctx.out.warn(`could not stop agent ${uuid} on the verifier: ${(stopErr as Error).message}`)
      }
      throw e
    }
  }
  const results = {
    agent_id: uuid,
    verifier: `${formatHostPort(ctx.verifierIp, ctx.verifierPort)}`,
    agent_api_version: version,
    push_model: o.pushModel,
    payload: delivery.kind,
    verified,
    tpm_policy_mask: formatMask(policies.tpmPolicy.mask),
    operational_state: o.pushModel ? null : agentStateName(status.operational_state),
    attestation_status: status.attestation_status ?? null,
  }
  return {
    results,
    text: `Agent ${uuid} ${o.command === 'update' ? 'updated on' : 'added to'} ${ctx.label('verifier')}${verified ? ' (key derivation verified)' : ''}`,
  }
}
