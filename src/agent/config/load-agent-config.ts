/**
 * The agent's configuration as rust-keylime reads it (`keylime/src/config/*`, rust-keylime
 * `keylime-agent.conf`): TOML files `/etc/keylime/agent.conf` (or `KEYLIME_AGENT_CONFIG`), then
 * every `agent.conf.d/*.conf` in name order, each with an `[agent]` table, then
 * `KEYLIME_AGENT_<OPTION>` environment variables (and `KEYLIME_DIR` for `keylime_dir`). Files are
 * read as text and parsed with `Bun.TOML.parse` (they end in `.conf`). An unknown option is a
 * warning; a value of the wrong type or outside its choices is an error naming the option.
 *
 * @module
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import type { EncAlg, HashAlg, SignAlg } from '../../tpm/constants.ts'
import { AgentError } from '../errors.ts'

/** Option kinds. */
type Kind = 'string' | 'int' | 'bool'

/** Upstream options with their defaults (rust-keylime `keylime-agent.conf`). */
const OPTIONS = {
  version: ['string', '2.4'],
  api_versions: ['string', 'default'],
  uuid: ['string', 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'],
  ip: ['string', '127.0.0.1'],
  port: ['int', 9002],
  contact_ip: ['string', '127.0.0.1'],
  contact_port: ['int', 9002],
  registrar_ip: ['string', '127.0.0.1'],
  registrar_port: ['int', 8890],
  enable_agent_mtls: ['bool', true],
  keylime_dir: ['string', '/var/lib/keylime'],
  server_key: ['string', 'default'],
  server_key_password: ['string', ''],
  server_cert: ['string', 'default'],
  trusted_client_ca: ['string', 'default'],
  enc_keyname: ['string', 'derived_tci_key'],
  dec_payload_file: ['string', 'decrypted_payload'],
  secure_size: ['string', '1m'],
  extract_payload_zip: ['bool', true],
  enable_revocation_notifications: ['bool', false],
  revocation_actions_dir: ['string', '/usr/libexec/keylime'],
  revocation_notification_ip: ['string', '127.0.0.1'],
  revocation_notification_port: ['int', 8992],
  revocation_cert: ['string', 'default'],
  revocation_actions: ['string', ''],
  payload_script: ['string', 'autorun.sh'],
  enable_insecure_payload: ['bool', false],
  allow_payload_revocation_actions: ['bool', true],
  tpm_hash_alg: ['string', 'sha256'],
  tpm_encryption_alg: ['string', 'rsa'],
  tpm_signing_alg: ['string', 'rsassa'],
  ek_handle: ['string', 'generate'],
  enable_iak_idevid: ['bool', false],
  iak_idevid_template: ['string', 'detect'],
  iak_idevid_asymmetric_alg: ['string', 'rsa'],
  iak_idevid_name_alg: ['string', 'sha256'],
  idevid_password: ['string', ''],
  idevid_handle: ['string', ''],
  iak_password: ['string', ''],
  iak_handle: ['string', ''],
  iak_cert: ['string', 'default'],
  idevid_cert: ['string', 'default'],
  tpm_ownerpassword: ['string', ''],
  run_as: ['string', ''],
  agent_data_path: ['string', 'default'],
  ima_ml_path: ['string', 'default'],
  measuredboot_ml_path: ['string', 'default'],
  registrar_tls_enabled: ['bool', false],
  exponential_backoff: ['bool', true],
  retry_interval: ['int', 1000],
  max_retries: ['int', 5],
  // push mode (rust-keylime keylime-push-model-agent, `PushModelConfig`); `mode` is ours
  mode: ['string', 'pull'],
  verifier_url: ['string', 'https://localhost:8881'],
  verifier_tls_ca_cert: ['string', 'default'],
  attestation_interval_seconds: ['int', 60],
  exponential_backoff_initial_delay: ['int', 10000],
  exponential_backoff_max_retries: ['int', 5],
  exponential_backoff_max_delay: ['int', 300000],
  registrar_tls_port: ['int', 8891],
  registrar_tls_ca_cert: ['string', 'default'],
  registrar_api_versions: ['string', 'default'],
  certification_keys_server_identifier: ['string', 'ak'],
  uefi_logs_evidence_version: ['string', '2.1'],
} as const satisfies Record<string, readonly [Kind, string | number | boolean]>

/** An option name. */
export type AgentOptionName = keyof typeof OPTIONS

/** Raw option values by name (typed by kind). */
export type RawAgentOptions = {
  -readonly [K in AgentOptionName]: (typeof OPTIONS)[K][1] extends number
    ? number
    : (typeof OPTIONS)[K][1] extends boolean
      ? boolean
      : string
}

/** The resolved configuration the agent runs with. */
export interface AgentConfig {
  /** The raw options after files and environment. */
  raw: RawAgentOptions
  /** Files read, in order. */
  files: string[]
  /** `keylime_dir`. */
  keylimeDir: string
  /** `tpm_hash_alg`. */
  hashAlg: HashAlg
  /** `tpm_encryption_alg`. */
  encAlg: EncAlg
  /** `tpm_signing_alg`. */
  signAlg: SignAlg
  /** `ek_handle` as a number, or undefined for "generate". */
  ekHandle: number | undefined
  /** Enabled API versions. */
  apiVersions: string[]
  /** `revocation_actions` split on commas. */
  revocationActions: string[]
  /** Resolved paths. */
  paths: {
    serverKey: string
    serverCert: string
    trustedClientCa: string[]
    agentData: string
    payloadKey: string
    imaList: string
    measuredBootLog: string
    secureDir: string
    revocationCert: string | undefined
  }
  /** `tpm_ownerpassword` as bytes (`hex:` prefix decoded). */
  endorsementAuth: Uint8Array
  /** `mode`: `pull` serves the agent API; `push` attests to `verifier_url` and listens nowhere. */
  mode: 'pull' | 'push'
  /** The push-mode options (read in both modes, used in push mode). */
  push: PushConfig
  /** Registrar base URL: `http://registrar_ip:registrar_port`, or HTTPS on `registrar_tls_port`. */
  registrarUrl: string
  /** CA certificate file for the registrar's TLS certificate (`registrar_tls_enabled`). */
  registrarCaPath: string | undefined
}

/** Push-mode settings (rust-keylime `PushModelConfig`). */
export interface PushConfig {
  /** `verifier_url` without a trailing slash (HTTPS). */
  verifierUrl: string
  /** `verifier_tls_ca_cert`, resolved under keylime_dir. */
  verifierCaPath: string
  /** `attestation_interval_seconds`: the wait after a failed cycle, and the fallback interval. */
  intervalSeconds: number
  /** `exponential_backoff_*`: retries of one request on network errors, 5xx, 408 and 429. */
  backoff: { initialDelayMs: number; maxRetries: number; maxDelayMs: number }
  /** `registrar_api_versions`. */
  registrarApiVersions: string[]
  /** `certification_keys_server_identifier`. */
  serverIdentifier: string
  /** `uefi_logs_evidence_version`. */
  uefiEvidenceVersion: string
}

/** Options of {@link loadAgentConfig} (tests point it elsewhere). */
export interface LoadAgentConfigOptions {
  /** Main file (default `KEYLIME_AGENT_CONFIG` or `/etc/keylime/agent.conf`). */
  file?: string
  /** Drop-in directory (default `<dir of file>/agent.conf.d`). */
  dropInDir?: string
  /** Environment (default process.env). */
  env?: Record<string, string | undefined>
  /** Warning sink (unknown options). */
  warn?: (msg: string) => void
}

const SUPPORTED_VERSIONS = ['2.1', '2.2', '2.3', '2.4', '2.5', '2.6']
const HASHES = ['sha1', 'sha256', 'sha384', 'sha512'] as const
const ENCS = ['rsa', 'ecc'] as const
const SIGNS = ['rsassa', 'rsapss', 'ecdsa'] as const

function bad(option: string, why: string): never {
  throw new AgentError('ERR_AGENT_CONFIG', `option ${option}: ${why}`)
}

/** Converts a file or environment value to the option's kind. */
function coerce(option: AgentOptionName, value: unknown, fromEnv: boolean): unknown {
  const kind = OPTIONS[option][0]
  if (kind === 'string') {
    if (typeof value === 'string') return value
    if (typeof value === 'number' && !fromEnv) return String(value)
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.join(',')
    bad(option, `expected a string, got ${typeof value}`)
  }
  if (kind === 'int') {
    if (typeof value === 'number' && Number.isInteger(value)) return value
    if (typeof value === 'string' && /^\d+$/.test(value.trim())) return Number(value.trim())
    bad(option, `expected an integer, got ${JSON.stringify(value)}`)
  }
  if (typeof value === 'boolean') return value
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase()
    if (['true', '1', 'yes', 'on'].includes(v)) return true
    if (['false', '0', 'no', 'off'].includes(v)) return false
  }
  return bad(option, `expected true or false, got ${JSON.stringify(value)}`)
}

function pick<T extends string>(option: string, value: string, choices: readonly T[]): T {
  const v = value.trim().toLowerCase()
  if (!(choices as readonly string[]).includes(v)) {
    bad(option, `"${value}" is not one of ${choices.join(', ')}`)
  }
  return v as T
}

/** Resolves `default` / relative / absolute like rust-keylime (relative to keylime_dir). */
function under(dir: string, value: string, dflt: string): string {
  if (value === '' || value === 'default') return join(dir, dflt)
  return isAbsolute(value) ? value : join(dir, value)
}

/** `default` → the given path; relative → from `/` (ima_ml_path, measuredboot_ml_path). */
function fromRoot(value: string, dflt: string): string {
  if (value === '' || value === 'default') return dflt
  return isAbsolute(value) ? value : join('/', value)
}

/** Decodes a TPM password, `hex:` prefix for hex bytes. */
function password(option: string, value: string): Uint8Array {
  if (value.startsWith('hex:')) {
    const hex = value.slice(4)
    if (!/^([0-9a-fA-F]{2})*$/.test(hex)) bad(option, 'hex: value is not hex')
    return Uint8Array.from(Buffer.from(hex, 'hex'))
  }
  return Uint8Array.from(Buffer.from(value, 'utf8'))
}

function readToml(path: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = Bun.TOML.parse(readFileSync(path, 'utf8'))
  } catch (cause) {
    throw new AgentError('ERR_AGENT_CONFIG', `${path} is not valid TOML`, { cause })
  }
  return (parsed ?? {}) as Record<string, unknown>
}

/** `host:port`, with brackets for an IPv6 literal. */
function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`
}

/** Parses a version list option (`default`, `latest` or `2.1, 2.3`). */
function versionList(option: string, value: string): string[] {
  const v = value.trim()
  if (v === '' || v === 'default') return [...SUPPORTED_VERSIONS]
  if (v === 'latest') return [SUPPORTED_VERSIONS.at(-1)!]
  const list = v.split(',').map((x) => x.trim())
  for (const x of list) {
    if (!SUPPORTED_VERSIONS.includes(x)) bad(option, `unsupported version "${x}"`)
  }
  return list
}

/** The push-mode options, checked (read in pull mode too, so a typo fails early). */
function pushConfig(raw: RawAgentOptions): PushConfig {
  let url: URL
  try {
    url = new URL(raw.verifier_url.trim())
  } catch {
    bad('verifier_url', `"${raw.verifier_url}" is not a URL`)
  }
  // push routes are HTTPS-only at the verifier, and the bearer token must not travel in clear
  if (url.protocol !== 'https:') bad('verifier_url', 'must be an https:// URL')
  if (raw.attestation_interval_seconds < 1) bad('attestation_interval_seconds', 'must be ≥ 1')
  if (raw.exponential_backoff_max_delay < raw.exponential_backoff_initial_delay) {
    bad('exponential_backoff_max_delay', 'is below exponential_backoff_initial_delay')
  }
  if (raw.exponential_backoff_max_retries > 100) bad('exponential_backoff_max_retries', '> 100')
  return {
    verifierUrl: url.href.replace(/(?<!\/)\/+$/, ''),
    verifierCaPath: under(raw.keylime_dir, raw.verifier_tls_ca_cert, 'cv_ca/cacert.crt'),
    intervalSeconds: raw.attestation_interval_seconds,
    backoff: {
      initialDelayMs: raw.exponential_backoff_initial_delay,
      maxRetries: raw.exponential_backoff_max_retries,
      maxDelayMs: raw.exponential_backoff_max_delay,
    },
    registrarApiVersions: versionList('registrar_api_versions', raw.registrar_api_versions),
    serverIdentifier: raw.certification_keys_server_identifier,
    uefiEvidenceVersion: raw.uefi_logs_evidence_version,
  }
}

/**
 * Loads the configuration.
 *
 * @throws {AgentError} `ERR_AGENT_CONFIG` naming the option for a bad value or file.
 */
export function loadAgentConfig(opts: LoadAgentConfigOptions = {}): AgentConfig {
  const env = opts.env ?? process.env
  const warn = opts.warn ?? (() => {})
  const file = opts.file ?? env.KEYLIME_AGENT_CONFIG ?? '/etc/keylime/agent.conf'
  const dropInDir = opts.dropInDir ?? `${file}.d`
  const raw = Object.fromEntries(
    Object.entries(OPTIONS).map(([k, [, v]]) => [k, v]),
  ) as RawAgentOptions
  const set = raw as Record<string, unknown>
  const files: string[] = []
  const sources: string[] = []
  if (existsSync(file)) sources.push(file)
  if (existsSync(dropInDir)) {
    for (const f of readdirSync(dropInDir)
      .filter((n) => n.endsWith('.conf'))
      .sort()) {
      sources.push(join(dropInDir, f))
    }
  }
  for (const path of sources) {
    const doc = readToml(path)
    files.push(path)
    const agent = doc.agent
    if (agent === undefined) continue
    if (typeof agent !== 'object' || agent === null || Array.isArray(agent)) {
      throw new AgentError('ERR_AGENT_CONFIG', `${path}: [agent] is not a table`)
    }
    for (const [k, v] of Object.entries(agent)) {
      if (!(k in OPTIONS)) {
        warn(`${path}: unknown option "${k}" in [agent] is ignored`)
        continue
      }
      set[k] = coerce(k as AgentOptionName, v, false)
    }
  }
  for (const k of Object.keys(OPTIONS) as AgentOptionName[]) {
    const v = env[`KEYLIME_AGENT_${k.toUpperCase()}`]
    if (v !== undefined) set[k] = coerce(k, v, true)
  }
  if (env.KEYLIME_DIR && env.KEYLIME_AGENT_KEYLIME_DIR === undefined)
    raw.keylime_dir = env.KEYLIME_DIR

  for (const p of ['port', 'contact_port', 'registrar_port', 'registrar_tls_port'] as const) {
    if (raw[p] < 1 || raw[p] > 65535) bad(p, `${raw[p]} is not a TCP port`)
  }
  const hashAlg = pick('tpm_hash_alg', raw.tpm_hash_alg, HASHES)
  const encAlg = pick('tpm_encryption_alg', raw.tpm_encryption_alg, ENCS)
  const signAlg = pick('tpm_signing_alg', raw.tpm_signing_alg, SIGNS)
  if ((encAlg === 'rsa') !== (signAlg !== 'ecdsa')) {
    bad('tpm_signing_alg', `${signAlg} does not fit tpm_encryption_alg = ${encAlg}`)
  }
  let ekHandle: number | undefined
  const eh = raw.ek_handle.trim()
  if (eh !== '' && eh !== 'generate') {
    if (!/^(0x)?[0-9a-fA-F]{1,8}$/.test(eh)) bad('ek_handle', `"${eh}" is not a handle`)
    ekHandle = Number.parseInt(eh.replace(/^0x/i, ''), 16)
  }
  const mode = pick('mode', raw.mode, ['pull', 'push'] as const)
  // push mode speaks API 3.0 whatever api_versions says (rust-keylime overrides it too)
  const pushVersions = mode === 'push' && !['', 'default'].includes(raw.api_versions.trim())
  if (pushVersions) warn(`api_versions = "${raw.api_versions}" is ignored in push mode (API 3.0)`)
  const apiVersions = pushVersions
    ? [...SUPPORTED_VERSIONS]
    : versionList('api_versions', raw.api_versions)
  const uuid = raw.uuid.trim()
  if (uuid !== 'generate' && uuid !== 'hash_ek' && !/^[\w.-]{1,255}$/.test(uuid)) {
    bad('uuid', `"${uuid}" is not a valid agent id (or "generate", "hash_ek")`)
  }
  if (!/^\d+[kmgKMG%]?$/.test(raw.secure_size.trim())) {
    bad('secure_size', `"${raw.secure_size}" is not a tmpfs size`)
  }
  if (raw.enable_iak_idevid) bad('enable_iak_idevid', 'IAK/IDevID is not supported by this agent')
  if (raw.enable_revocation_notifications) {
    warn(
      'enable_revocation_notifications: ZeroMQ notifications are not supported; the REST route is',
    )
  }
  const dir = raw.keylime_dir
  const trusted =
    raw.trusted_client_ca === '' || raw.trusted_client_ca === 'default'
      ? [join(dir, 'cv_ca', 'cacert.crt')]
      : raw.trusted_client_ca
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '')
          .map((s) => under(dir, s, 'cv_ca/cacert.crt'))
  const secureDir = join(dir, 'secure')
  const push = pushConfig(raw)
  const registrarCaPath = raw.registrar_tls_enabled
    ? under(dir, raw.registrar_tls_ca_cert, 'cv_ca/cacert.crt')
    : undefined
  return {
    mode,
    push,
    registrarUrl: raw.registrar_tls_enabled
      ? `https://${hostPort(raw.registrar_ip, raw.registrar_tls_port)}`
      : `http://${hostPort(raw.registrar_ip, raw.registrar_port)}`,
    registrarCaPath,
    raw,
    files,
    keylimeDir: dir,
    hashAlg,
    encAlg,
    signAlg,
    ekHandle,
    apiVersions,
    revocationActions: raw.revocation_actions
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
    paths: {
      serverKey: under(dir, raw.server_key, 'server-private.pem'),
      serverCert: under(dir, raw.server_cert, 'server-cert.crt'),
      trustedClientCa: trusted,
      agentData: under(dir, raw.agent_data_path, 'agent_data.json'),
      payloadKey: join(dir, 'payload-private.pem'),
      imaList: fromRoot(raw.ima_ml_path, '/sys/kernel/security/ima/ascii_runtime_measurements'),
      measuredBootLog: fromRoot(
        raw.measuredboot_ml_path,
        '/sys/kernel/security/tpm0/binary_bios_measurements',
      ),
      secureDir,
      revocationCert:
        raw.revocation_cert === '' || raw.revocation_cert === 'default'
          ? undefined
          : under(dir, raw.revocation_cert, ''),
    },
    endorsementAuth: password('tpm_ownerpassword', raw.tpm_ownerpassword),
  }
}
