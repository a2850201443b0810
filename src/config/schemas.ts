/**
 * Every option of `verifier.conf`, `registrar.conf`, `tenant.conf` and `ca.conf` that upstream
 * Keylime 7.14 documents (config version 2.6), with its value kind and its default.
 *
 * Defaults are written as the **raw text** upstream's `templates/2.x/mapping.json` renders into
 * the file (`"5,10"`, `"['agent']"`, `"True"`), and are decoded by the same
 * {@link decodeValue} that reads files, so "a missing option" and "the option as upstream's
 * template writes it" give identical values. Sources: `templates/2.1/mapping.json` (full list),
 * the 2.3–2.6 update mappings, and `keylime/models/verifier/auth_session.py` for
 * `nonce_lifetime` (read by upstream with a fallback but not in the template).
 *
 * The TypeScript config types ({@link VerifierConfig}, …) are derived from these tables, so a
 * property is always named exactly as the upstream option.
 *
 * @module
 */

import type { ValueKind, ValueOf } from './decode-value.ts'

/** One option: how to decode it and its default as upstream writes it into the file. */
export interface OptionSpec<K extends ValueKind = ValueKind> {
  /** The value kind. */
  kind: K
  /** Default, as raw INI text. */
  default: string
}

/** Options of one INI section. */
export type SectionSchema = Readonly<Record<string, OptionSpec>>

/** Sections of one component's file. */
export type ComponentSchema = Readonly<Record<string, SectionSchema>>

/** The typed object a component schema loads into, plus the files that were read. */
export type ConfigOf<S extends ComponentSchema> = {
  -readonly [Sec in keyof S]: { -readonly [O in keyof S[Sec]]: ValueOf<S[Sec][O]['kind']> }
} & {
  /** Files actually read, in the order applied (base file, then snippets). */
  sources: string[]
}

function opt<const K extends ValueKind>(kind: K, defaultText: string): OptionSpec<K> {
  return { kind, default: defaultText }
}

const STRING = { type: 'string' } as const
const BOOL = { type: 'bool' } as const
const PORT = { type: 'port' } as const
const LIST = { type: 'list' } as const
const NON_NEGATIVE_INT = { type: 'int', min: 0 } as const
const NON_NEGATIVE_FLOAT = { type: 'float', min: 0 } as const

const str = (d: string) => opt(STRING, d)
const bool = (d: 'True' | 'False') => opt(BOOL, d)
const port = (d: string) => opt(PORT, d)
const uint = (d: string) => opt(NON_NEGATIVE_INT, d)
const ufloat = (d: string) => opt(NON_NEGATIVE_FLOAT, d)

/** Durable-attestation options shared by `[verifier]` and `[registrar]` (experimental upstream). */
function durableAttestationOptions(signedAttributes: string) {
  return {
    durable_attestation_import: str(''),
    persistent_store_url: str(''),
    transparency_log_url: str(''),
    time_stamp_authority_url: str(''),
    time_stamp_authority_certs_path: str(''),
    persistent_store_format: str('json'),
    persistent_store_encoding: str(''),
    transparency_log_sign_algo: str('sha256'),
    signed_attributes: str(signedAttributes),
  }
}

/** `verifier.conf`: sections `[verifier]` and `[revocations]`. */
export const VERIFIER_SCHEMA = {
  verifier: {
    version: str('2.6'),
    uuid: str('default'),
    ip: str('127.0.0.1'),
    port: port('8881'),
    registrar_ip: str('127.0.0.1'),
    registrar_port: port('8891'),
    enable_agent_mtls: bool('True'),
    tls_dir: str('generate'),
    server_key: str('default'),
    server_key_password: str(''),
    server_cert: str('default'),
    cert_subject_alternative_names: opt({ type: 'csv' }, ''),
    trusted_client_ca: opt({ type: 'trusted_ca' }, 'default'),
    client_key: str('default'),
    client_key_password: str(''),
    client_cert: str('default'),
    trusted_server_ca: opt({ type: 'trusted_ca' }, 'default'),
    authorization_provider: str('simple'),
    database_url: str('sqlite'),
    database_pool_sz_ovfl: opt({ type: 'pool' }, '5,10'),
    auto_migrate_db: bool('True'),
    num_workers: uint('0'),
    max_workers: uint('16'),
    exponential_backoff: bool('True'),
    retry_interval: ufloat('2'),
    max_retries: uint('5'),
    quote_interval: ufloat('2'),
    max_upload_size: uint('104857600'),
    request_timeout: ufloat('60.0'),
    measured_boot_policy_name: str('accept-all'),
    measured_boot_imports: opt(LIST, '[]'),
    measured_boot_evaluate: opt({ type: 'enum', values: ['once', 'always'] }, 'once'),
    severity_labels: opt(
      LIST,
      '["info", "notice", "warning", "error", "critical", "alert", "emergency"]',
    ),
    severity_policy: opt(
      { type: 'severity_policy' },
      '[{"event_id": ".*", "severity_label" : "emergency"}]',
    ),
    ignore_tomtou_errors: bool('False'),
    ...durableAttestationOptions(''),
    require_allow_list_signatures: bool('False'),
    mode: opt({ type: 'enum', values: ['pull', 'push'] }, 'pull'),
    challenge_lifetime: uint('1800'),
    verification_timeout: ufloat('0'),
    session_create_rate_limit_per_ip: uint('50'),
    session_create_rate_limit_window_ip: uint('60'),
    session_create_rate_limit_per_agent: uint('15'),
    session_create_rate_limit_window_agent: uint('60'),
    session_lifetime: uint('180'),
    extend_token_on_attestation: bool('True'),
    auto_recover_attestation_failures: bool('False'),
    shutdown_drain_timeout: ufloat('10'),
    nonce_lifetime: uint('60'),
    // keylime-ts: key of the push-mode token hashes (HMAC-SHA256), 0600; `default` is
    // <KEYLIME_DIR>/session-token.key; verifiers sharing a database share it (docs/push-mode.md)
    session_token_key: str('default'),
    // keylime-ts hardening (step 1): request bodies read at once (at most this × max_upload_size)
    max_concurrent_uploads: opt({ type: 'int', min: 1 }, '8'),
    // keylime-ts hardening (step 1): bound of a PostgreSQL statement in s (then 503); 0 = none
    database_timeout: ufloat('5'),
    // keylime-ts hardening (step 1): limits on agent answers, in bytes
    max_agent_response_size: opt({ type: 'int', min: 65536, max: 1073741824 }, '268435456'),
    max_agent_response_buffer: opt({ type: 'int', min: 65536 }, '536870912'),
    // keylime-ts hardening (step 1): CRLs of admin client certificates (src/ca/client-crl.ts)
    client_crl: str('default'),
  },
  revocations: {
    enabled_revocation_notifications: opt(LIST, "['agent']"),
    zmq_ip: str('127.0.0.1'),
    zmq_port: port('8992'),
    webhook_url: str(''),
    // keylime-ts addition: the webhook notice also carries the agent's signed EAR (docs/ear.md)
    webhook_ear: bool('False'),
  },
} as const satisfies ComponentSchema

/** `registrar.conf`: section `[registrar]`. */
export const REGISTRAR_SCHEMA = {
  registrar: {
    version: str('2.6'),
    ip: str('127.0.0.1'),
    port: port('8890'),
    tls_port: port('8891'),
    tls_dir: str('default'),
    server_key: str('default'),
    server_key_password: str(''),
    server_cert: str('default'),
    cert_subject_alternative_names: opt({ type: 'csv' }, ''),
    trusted_client_ca: opt({ type: 'trusted_ca' }, 'default'),
    authorization_provider: str('simple'),
    database_url: str('sqlite'),
    database_pool_sz_ovfl: opt({ type: 'pool' }, '5,10'),
    max_workers: uint('16'),
    auto_migrate_db: bool('True'),
    ...durableAttestationOptions('ek_tpm,aik_tpm,ekcert'),
    tpm_identity: opt(
      { type: 'enum', values: ['default', 'ek_cert', 'iak_idevid', 'ek_cert_or_iak_idevid'] },
      'default',
    ),
    malformed_cert_action: opt({ type: 'enum', values: ['warn', 'reject', 'ignore'] }, 'warn'),
    // keylime-ts hardening (step 1): body cap (bytes) and bodies read at once, both listeners
    max_upload_size: opt({ type: 'int', min: 1024 }, '65536'),
    max_concurrent_uploads: opt({ type: 'int', min: 1 }, '128'),
    // keylime-ts hardening (step 1): bound of a PostgreSQL statement in s (then 503); 0 = none
    database_timeout: ufloat('5'),
    // keylime-ts hardening (step 1): CRLs of admin client certificates (src/ca/client-crl.ts)
    client_crl: str('default'),
  },
} as const satisfies ComponentSchema

/** `tenant.conf`: section `[tenant]`. */
export const TENANT_SCHEMA = {
  tenant: {
    version: str('2.6'),
    verifier_ip: str('127.0.0.1'),
    verifier_port: port('8881'),
    registrar_ip: str('127.0.0.1'),
    registrar_port: port('8891'),
    tls_dir: str('default'),
    enable_agent_mtls: bool('True'),
    client_key: str('default'),
    client_key_password: str(''),
    client_cert: str('default'),
    trusted_server_ca: opt({ type: 'trusted_ca' }, 'default'),
    tpm_cert_store: str('/var/lib/keylime/tpm_cert_store'),
    max_payload_size: uint('1048576'),
    accept_tpm_hash_algs: opt(LIST, "['sha512', 'sha384', 'sha256']"),
    accept_tpm_encryption_algs: opt(LIST, "['ecc', 'rsa']"),
    accept_tpm_signing_algs: opt(LIST, "['ecschnorr', 'rsassa']"),
    exponential_backoff: bool('True'),
    retry_interval: ufloat('2'),
    max_retries: uint('5'),
    request_timeout: ufloat('60'),
    require_ek_cert: bool('True'),
    ek_check_script: str(''),
    mb_refstate: str(''),
  },
} as const satisfies ComponentSchema

/** `ca.conf`: section `[ca]` (used by `keylime_ca` and `tls_dir = generate`). */
export const CA_SCHEMA = {
  ca: {
    version: str('2.6'),
    password: str('default'),
    cert_country: str('US'),
    cert_ca_name: str('Keylime Certificate Authority'),
    cert_state: str('MA'),
    cert_locality: str('Lexington'),
    cert_organization: str('Keylime'),
    cert_org_unit: str('53'),
    cert_ca_lifetime: opt({ type: 'int', min: 1, max: 36500 }, '3650'),
    cert_lifetime: opt({ type: 'int', min: 1, max: 36500 }, '365'),
    cert_bits: opt({ type: 'int', min: 1024, max: 16384 }, '2048'),
    cert_crl_dist: str('http://localhost:38080/crl'),
  },
} as const satisfies ComponentSchema

/** Typed `verifier.conf`: `cfg.verifier.quote_interval`, `cfg.revocations.zmq_port`, … */
export type VerifierConfig = ConfigOf<typeof VERIFIER_SCHEMA>
/** Typed `registrar.conf`: `cfg.registrar.tls_port`, … */
export type RegistrarConfig = ConfigOf<typeof REGISTRAR_SCHEMA>
/** Typed `tenant.conf`: `cfg.tenant.accept_tpm_hash_algs`, … */
export type TenantConfig = ConfigOf<typeof TENANT_SCHEMA>
/** Typed `ca.conf`: `cfg.ca.cert_bits`, … */
export type CaConfig = ConfigOf<typeof CA_SCHEMA>
