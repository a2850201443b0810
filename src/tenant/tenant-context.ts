/**
 * Everything a tenant command needs to talk to the control plane: the `[tenant]` configuration
 * with command-line overrides, the mTLS client built from the cv_ca client certificate
 * (`tls_dir`, `client_cert`, `client_key`, `client_key_password`, `trusted_server_ca`), API
 * version negotiation with the registrar and verifier (`GET /version`, highest common 2.x version;
 * the tenant never uses v3, as upstream), and the mapping of HTTP answers to typed errors.
 *
 * Kept light on purpose: `reglist` must answer in a few milliseconds, so this module loads no
 * X.509 library (certificates are checked with `node:crypto`), no TPM, policy or CA code.
 *
 * @module
 */
import type { TenantConfig } from '../config/schemas.ts'
import { formatHostPort } from '../http/format-host-port.ts'
import { MtlsClient } from '../http/mtls-client.ts'
import type { MtlsResponse } from '../http/parse-mtls-response.ts'
import { TenantError } from './errors.ts'
import { newestCommonVersion } from '../protocol/api-versions.ts'
import { type ClientTls, loadClientTls } from './load-client-tls.ts'
import type { TenantOptions } from './parse-tenant-args.ts'
import type { TenantOutput } from './tenant-output.ts'

/** API versions the tenant speaks (upstream `all_versions()` without 3.x). */
export const TENANT_API_VERSIONS = ['2.0', '2.1', '2.2', '2.3', '2.4', '2.5', '2.6'] as const

/** The tenant's current API version (fallback when a server does not say). */
export const TENANT_CURRENT_VERSION = '2.6'

/** The HTTP methods the tenant sends. */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'

/** The API version of the verifier's JSON:API admin routes (push model, `PATCH /v3.0/agents/:id`). */
export const V3_VERSION = '3.0'

/** The JSON:API media type (v3 requests). */
const JSON_API = 'application/vnd.api+json'

/** The services the tenant talks to. */
export type Service = 'registrar' | 'verifier'

/** The newest version of `ours` that `theirs` lists, or undefined. */
export function negotiateVersion(
  theirs: readonly unknown[],
  ours: readonly string[] = TENANT_API_VERSIONS,
): string | undefined {
  return newestCommonVersion(ours, theirs.map(String))
}

/** The envelope `status` text of a response body, if any. */
export function envelopeStatus(body: unknown): string | undefined {
  if (typeof body === 'object' && body !== null && 'status' in body) {
    const s = (body as { status: unknown }).status
    return typeof s === 'string' ? s : undefined
  }
  return undefined
}

/** The shared state of one tenant invocation. */
export class TenantContext {
  readonly opts: TenantOptions
  readonly cfg: TenantConfig['tenant']
  readonly keylimeDir: string
  readonly out: TenantOutput
  readonly env: NodeJS.ProcessEnv
  verifierIp: string
  verifierPort: number
  registrarIp: string
  registrarPort: number
  #tls: ClientTls | undefined
  #client: MtlsClient | undefined
  readonly #versions = new Map<Service, string>()

  constructor(
    opts: TenantOptions,
    cfg: TenantConfig['tenant'],
    keylimeDir: string,
    out: TenantOutput,
    env: NodeJS.ProcessEnv,
  ) {
    this.opts = opts
    this.cfg = cfg
    this.keylimeDir = keylimeDir
    this.out = out
    this.env = env
    this.verifierIp = opts.verifierIp ?? cfg.verifier_ip
    this.verifierPort = opts.verifierPort ?? cfg.verifier_port
    this.registrarIp = opts.registrarIp ?? cfg.registrar_ip
    this.registrarPort = opts.registrarPort ?? cfg.registrar_port
  }

  /** Request timeout in ms (`request_timeout`, seconds). */
  get timeoutMs(): number {
    return Math.max(1, this.cfg.request_timeout) * 1000
  }

  /** `Registrar (ip:port)` / `Verifier (ip:port)`, as upstream names them in messages. */
  label(service: Service): string {
    return service === 'registrar'
      ? `Registrar (${formatHostPort(this.registrarIp, this.registrarPort)})`
      : `Verifier${this.opts.verifierId ? ` ${this.opts.verifierId}` : ''} (${formatHostPort(this.verifierIp, this.verifierPort)})`
  }

  /** `https://host:port` of a service. */
  baseUrl(service: Service): string {
    return service === 'registrar'
      ? `https://${formatHostPort(this.registrarIp, this.registrarPort)}`
      : `https://${formatHostPort(this.verifierIp, this.verifierPort)}`
  }

  /**
   * The client TLS material from tenant.conf (`load-client-tls.ts`).
   *
   * @throws {TenantError} `ERR_TENANT_CONFIG` naming the file and the option to check.
   */
  async tls(): Promise<ClientTls> {
    this.#tls ??= await loadClientTls(this.cfg, this.keylimeDir, this.env)
    return this.#tls
  }

  /** The mTLS client (client certificate presented, servers checked against the trusted CAs). */
  async client(): Promise<MtlsClient> {
    if (this.#client) return this.#client
    const t = await this.tls()
    this.#client = new MtlsClient({
      cert: t.cert,
      key: t.key,
      ca: t.ca,
      verifyPeer: t.verifyPeer,
      timeoutMs: this.timeoutMs,
    })
    return this.#client
  }

  /**
   * The negotiated API version of a service (`GET /version`, highest common 2.x). A server that
   * answers 410 (push mode) or no version list gets the tenant's current version, as upstream.
   *
   * @throws {TenantError} `ERR_TENANT_UNREACHABLE` when the server cannot be reached;
   *   `ERR_TENANT_REJECTED` when no common version exists.
   */
  async version(service: Service): Promise<string> {
    const known = this.#versions.get(service)
    if (known) return known
    const client = await this.client()
    const res = await this.#send(client, service, `${this.baseUrl(service)}/version`, {})
    let version = TENANT_CURRENT_VERSION
    const r = res.results as { supported_versions?: unknown; current_version?: unknown } | null
    if (res.status === 200 && r && Array.isArray(r.supported_versions)) {
      const v = negotiateVersion(r.supported_versions)
      if (v === undefined) {
        throw new TenantError(
          'ERR_TENANT_REJECTED',
          `No compatible API version with ${this.label(service)}. Tenant supports: ${TENANT_API_VERSIONS.join(', ')}, server supports: ${r.supported_versions.join(', ')}`,
        )
      }
      version = v
    } else if (res.status === 200 && r && typeof r.current_version === 'string') {
      version = negotiateVersion([r.current_version]) ?? TENANT_CURRENT_VERSION
    }
    this.#versions.set(service, version)
    return version
  }

  async #send(
    client: MtlsClient,
    service: Service,
    url: string,
    req: { method?: HttpMethod; json?: unknown; headers?: Record<string, string> },
  ): Promise<MtlsResponse> {
    try {
      return await client.request(url, req)
    } catch (err) {
      const e = err as { code?: string; message?: string }
      if (e.code === 'ERR_PEER_UNREACHABLE') {
        const opt =
          service === 'registrar'
            ? 'registrar_ip/registrar_port (-r/-rp)'
            : 'verifier_ip/verifier_port (-v/-vp)'
        throw new TenantError('ERR_TENANT_UNREACHABLE', `${this.label(service)}: ${e.message}`, {
          hint: `is the ${service} running? check [tenant] ${opt} and that its CA is in trusted_server_ca`,
          cause: err,
        })
      }
      throw err
    }
  }

  /**
   * Sends a request to `/v<negotiated>/<path>` of a service.
   *
   * @throws {TenantError} `ERR_TENANT_UNREACHABLE` on connection, TLS or timeout failures.
   */
  async call(
    service: Service,
    method: HttpMethod,
    path: string,
    json?: unknown,
  ): Promise<MtlsResponse> {
    const client = await this.client()
    const known = this.#versions.get(service)
    const url = (v: string) => `${this.baseUrl(service)}/v${v}/${path}`
    if (known !== undefined) return this.#send(client, service, url(known), { method, json })
    // Optimistic: try the tenant's current version first and negotiate (`GET /version`) only if
    // the server refuses the request in a way an unsupported version would (400/404/405). This
    // saves a round trip per command against an up-to-date control plane; against an older one
    // the request is repeated with the negotiated version.
    const first = await this.#send(client, service, url(TENANT_CURRENT_VERSION), { method, json })
    if (first.status !== 400 && first.status !== 404 && first.status !== 405) {
      this.#versions.set(service, TENANT_CURRENT_VERSION)
      return first
    }
    const v = await this.version(service)
    if (v === TENANT_CURRENT_VERSION) return first
    return this.#send(client, service, url(v), { method, json })
  }

  /**
   * Sends a JSON:API request to `/v3.0/<path>` of the verifier (`Content-Type:
   * application/vnd.api+json`). Only `reactivate` of a push agent uses it; every other command
   * stays on v2 as upstream's tenant does.
   *
   * @throws {TenantError} `ERR_TENANT_UNREACHABLE` on connection, TLS or timeout failures.
   */
  async callV3(method: HttpMethod, path: string, json?: unknown): Promise<MtlsResponse> {
    const client = await this.client()
    const url = `${this.baseUrl('verifier')}/v${V3_VERSION}/${path}`
    const headers = { Accept: 'application/vnd.api+json, application/json' }
    return this.#send(client, 'verifier', url, {
      method,
      json,
      headers: json === undefined ? headers : { ...headers, 'Content-Type': JSON_API },
    })
  }

  /**
   * Turns a non-success answer into the matching typed error: 404 → not found (exit 4), 409 →
   * conflict (7), anything else → rejected (1), with the server's status text.
   */
  httpError(service: Service, res: MtlsResponse, what: string, hint?: string): TenantError {
    const status = envelopeStatus(res.body)
    const msg = `${what}: ${this.label(service)} answered ${res.status}${status ? ` (${status})` : ''}`
    const opts = { httpStatus: res.status, serverStatus: status, hint }
    if (res.status === 404) return new TenantError('ERR_TENANT_NOT_FOUND', msg, opts)
    if (res.status === 409) return new TenantError('ERR_TENANT_CONFLICT', msg, opts)
    return new TenantError('ERR_TENANT_REJECTED', msg, opts)
  }
}
