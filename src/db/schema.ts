/**
 * The one drizzle schema for keylime-ts, shared by PGlite (embedded) and PostgreSQL.
 *
 * Tables, column names, key names and unique constraints follow upstream Keylime's database as
 * left by Alembic head `a59cc9366774` (`keylime/migrations/versions/*`; the ORM classes in
 * `keylime/db/*_db.py` lag behind, so the migrations are the source of truth). Column types are
 * mapped once, here:
 *
 * | upstream (SQLAlchemy)                 | here                                         |
 * | ------------------------------------- | -------------------------------------------- |
 * | `String(n)`, `Text`                   | `text` (lengths are checked by the services) |
 * | `Integer`                             | `integer`; `bigint` (mode number) for epoch seconds |
 * | `Boolean`                             | `boolean`                                    |
 * | `LargeBinary`                         | `bytea` as `Uint8Array`                      |
 * | `JSONPickleType` (JSON text)          | `jsonb`                                      |
 *
 * Unnamed upstream keys get PostgreSQL's default names (`attestations_pkey`,
 * `attestations_agent_id_fkey`, …), as Alembic would have created them on PostgreSQL.
 *
 * TypeScript property names are the column names (snake_case), so service code reads like
 * upstream's (`agent.operational_state`, `row.ima_policy_id`).
 *
 * After changing this file run `bun x drizzle-kit generate` and add the new migration to
 * `src/db/embedded-migrations.ts`.
 *
 * @module
 */
import {
  bigint,
  boolean,
  customType,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  serial,
  text,
  unique,
} from 'drizzle-orm/pg-core'

/**
 * PostgreSQL `bytea` as a plain `Uint8Array` in both drivers (postgres.js hands back a `Buffer`,
 * PGlite a `Uint8Array`; both become a `Uint8Array` view without copying).
 */
export const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType() {
    return 'bytea'
  },
  toDriver(value) {
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  },
  fromDriver(value) {
    return Buffer.isBuffer(value)
      ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
      : value
  },
})

/**
 * Runtime (IMA) policies, named; upstream's `allowlists` table
 * (`eb869a77abd1`, `2fbc0fb8fa4d` checksum, `039322ea079b` generator, `bc3b6b551b0a`).
 */
export const allowlists = pgTable(
  'allowlists',
  {
    id: serial('id').primaryKey(),
    name: text('name').notNull(),
    /** Hex digest of `ima_policy` (String(128) upstream), indexed. */
    checksum: text('checksum'),
    /** `RUNTIME_POLICY_GENERATOR` value of the tool that produced the policy. */
    generator: integer('generator'),
    /** Static PCR policy text stored with the runtime policy. */
    tpm_policy: text('tpm_policy'),
    /** The runtime policy JSON document, as text (LONGTEXT on MySQL upstream). */
    ima_policy: text('ima_policy'),
    /** keylime-ts addition: version number, 1 at creation, +1 per PUT (old rows in the history). */
    version: integer('version').notNull().default(1),
  },
  (t) => [
    unique('uniq_allowlists0name').on(t.name),
    index('ix_allowlists_checksum').on(t.checksum),
  ],
)

/** Measured-boot policies, named (`32902c0a8d90`). */
export const mbpolicies = pgTable(
  'mbpolicies',
  {
    id: serial('id').primaryKey(),
    name: text('name').notNull(),
    /** The measured-boot reference state / policy JSON document, as text. */
    mb_policy: text('mb_policy'),
    /** keylime-ts addition: version number, 1 at creation, +1 per PUT (old rows in the history). */
    version: integer('version').notNull().default(1),
  },
  (t) => [unique('uniq_mbpolicies_name').on(t.name)],
)

/**
 * keylime-ts addition: previous versions of runtime policies, one row per replaced or deleted
 * version (`PUT`/`DELETE /allowlists/{name}` keep what they overwrite).
 */
export const allowlists_history = pgTable(
  'allowlists_history',
  {
    id: serial('id').primaryKey(),
    name: text('name').notNull(),
    version: integer('version').notNull(),
    checksum: text('checksum'),
    generator: integer('generator'),
    tpm_policy: text('tpm_policy'),
    ima_policy: text('ima_policy'),
    /** When this version stopped being current (epoch seconds). */
    replaced_at: bigint('replaced_at', { mode: 'number' }).notNull(),
  },
  (t) => [index('ix_allowlists_history_name').on(t.name, t.version)],
)

/** keylime-ts addition: previous versions of measured-boot policies. */
export const mbpolicies_history = pgTable(
  'mbpolicies_history',
  {
    id: serial('id').primaryKey(),
    name: text('name').notNull(),
    version: integer('version').notNull(),
    mb_policy: text('mb_policy'),
    /** When this version stopped being current (epoch seconds). */
    replaced_at: bigint('replaced_at', { mode: 'number' }).notNull(),
  },
  (t) => [index('ix_mbpolicies_history_name').on(t.name, t.version)],
)

/**
 * keylime-ts addition: live verifier processes sharing one database. Each process heartbeats its
 * row; rows older than the lease period are dead instances whose agents others may claim.
 */
export const verifier_instances = pgTable(
  'verifier_instances',
  {
    /** Random per process start. */
    instance_id: text('instance_id').primaryKey(),
    /** `[verifier] uuid` of the process: instances only share agents with the same verifier_id. */
    verifier_id: text('verifier_id').notNull(),
    /** Last heartbeat (epoch milliseconds). */
    heartbeat: bigint('heartbeat', { mode: 'number' }).notNull(),
    /** Process start (epoch milliseconds). */
    started: bigint('started', { mode: 'number' }).notNull(),
    /** Host name and pid, for operators. */
    host: text('host'),
  },
  (t) => [index('ix_verifier_instances_verifier_id').on(t.verifier_id)],
)

/** The verifier's agents (`cloud_verifier` engine), one row per enrolled agent. */
export const verifiermain = pgTable(
  'verifiermain',
  {
    agent_id: text('agent_id').primaryKey(),
    /** The V key half (base64). */
    v: text('v'),
    ip: text('ip'),
    port: integer('port'),
    /** `operational_state` numbers of `keylime/common/states.py`. */
    operational_state: integer('operational_state'),
    /** The agent's NK public key (PEM). */
    public_key: text('public_key'),
    tpm_policy: jsonb('tpm_policy'),
    meta_data: text('meta_data'),
    ima_policy_id: integer('ima_policy_id'),
    mb_policy_id: integer('mb_policy_id'),
    ima_sign_verification_keys: text('ima_sign_verification_keys'),
    revocation_key: text('revocation_key'),
    accept_tpm_hash_algs: jsonb('accept_tpm_hash_algs'),
    accept_tpm_encryption_algs: jsonb('accept_tpm_encryption_algs'),
    accept_tpm_signing_algs: jsonb('accept_tpm_signing_algs'),
    hash_alg: text('hash_alg'),
    enc_alg: text('enc_alg'),
    sign_alg: text('sign_alg'),
    /** Agent boot time, epoch seconds. */
    boottime: bigint('boottime', { mode: 'number' }),
    ima_pcrs: jsonb('ima_pcrs'),
    /** Running PCR10 value after the last evaluated IMA entry. */
    pcr10: bytea('pcr10'),
    next_ima_ml_entry: integer('next_ima_ml_entry'),
    learned_ima_keyrings: jsonb('learned_ima_keyrings'),
    severity_level: integer('severity_level'),
    last_event_id: text('last_event_id'),
    verifier_id: text('verifier_id'),
    verifier_ip: text('verifier_ip'),
    verifier_port: integer('verifier_port'),
    /** Agent API version, e.g. `2.2`; nullable since `870c218abd9a`. */
    supported_version: text('supported_version'),
    ak_tpm: text('ak_tpm'),
    mtls_cert: text('mtls_cert'),
    attestation_count: integer('attestation_count'),
    /** Epoch seconds. */
    last_received_quote: bigint('last_received_quote', { mode: 'number' }),
    /** Epoch seconds. */
    last_successful_attestation: bigint('last_successful_attestation', { mode: 'number' }),
    tpm_clockinfo: jsonb('tpm_clockinfo'),
    accept_attestations: boolean('accept_attestations').notNull().default(true),
    consecutive_attestation_failures: integer('consecutive_attestation_failures'),
    /** keylime-ts addition: the verifier instance polling this agent (see `verifier_instances`). */
    lease_owner: text('lease_owner'),
    /** keylime-ts addition: the owner's lease ends at this time (epoch milliseconds). */
    lease_expires: bigint('lease_expires', { mode: 'number' }),
    /**
     * keylime-ts addition: how the agent attests, chosen at enrolment: `pull` (polled) or `push`
     * (API 3.0, never polled; docs/push-mode.md).
     */
    mode: text('mode').notNull().default('pull'),
  },
  (t) => [
    // Not on lease_expires or any column a round writes: every write of a round then stays a
    // heap-only (HOT) update that touches no index (migration 0003 also sets fillfactor 80).
    index('ix_verifiermain_verifier_id').on(t.verifier_id),
    foreignKey({
      name: 'fk_verifiermain_allowlists',
      columns: [t.ima_policy_id],
      foreignColumns: [allowlists.id],
    }),
    foreignKey({
      name: 'fk_verifiermain_mbpolicies',
      columns: [t.mb_policy_id],
      foreignColumns: [mbpolicies.id],
    }),
  ],
)

/** Push-mode (API 3.0) attestations, one per agent and index (`870c218abd9a`). */
export const attestations = pgTable(
  'attestations',
  {
    agent_id: text('agent_id').notNull(),
    index: integer('index').notNull(),
    stage: text('stage').notNull().default('awaiting_evidence'),
    evaluation: text('evaluation').notNull().default('pending'),
    failure_reason: text('failure_reason'),
    /** ISO 8601 UTC timestamps (String(32) upstream). */
    system_info__boot_time: text('system_info__boot_time').notNull(),
    capabilities_received_at: text('capabilities_received_at').notNull(),
    challenges_expire_at: text('challenges_expire_at'),
    evidence_received_at: text('evidence_received_at'),
    verification_completed_at: text('verification_completed_at'),
  },
  (t) => [
    primaryKey({ name: 'attestations_pkey', columns: [t.agent_id, t.index] }),
    foreignKey({
      name: 'attestations_agent_id_fkey',
      columns: [t.agent_id],
      foreignColumns: [verifiermain.agent_id],
    }),
  ],
)

/** Push-mode evidence items of an attestation (`870c218abd9a`, `a59cc9366774`). */
export const evidence_items = pgTable(
  'evidence_items',
  {
    id: serial('id').primaryKey(),
    agent_id: text('agent_id').notNull(),
    attestation_index: integer('attestation_index').notNull(),
    evidence_class: text('evidence_class').notNull(),
    evidence_type: text('evidence_type').notNull(),
    capabilities__component_version: text('capabilities__component_version'),
    capabilities__evidence_version: text('capabilities__evidence_version'),
    capabilities__signature_schemes: text('capabilities__signature_schemes'),
    capabilities__hash_algorithms: text('capabilities__hash_algorithms'),
    capabilities__available_subjects: text('capabilities__available_subjects'),
    capabilities__certification_keys: text('capabilities__certification_keys'),
    capabilities__entry_count: integer('capabilities__entry_count'),
    capabilities__supports_partial_access: boolean('capabilities__supports_partial_access'),
    capabilities__appendable: boolean('capabilities__appendable'),
    capabilities__formats: text('capabilities__formats'),
    capabilities__meta: text('capabilities__meta'),
    chosen_parameters__challenge: bytea('chosen_parameters__challenge'),
    chosen_parameters__signature_scheme: text('chosen_parameters__signature_scheme'),
    chosen_parameters__hash_algorithm: text('chosen_parameters__hash_algorithm'),
    chosen_parameters__selected_subjects: text('chosen_parameters__selected_subjects'),
    chosen_parameters__certification_key: text('chosen_parameters__certification_key'),
    chosen_parameters__starting_offset: integer('chosen_parameters__starting_offset'),
    chosen_parameters__entry_count: integer('chosen_parameters__entry_count'),
    chosen_parameters__format: text('chosen_parameters__format'),
    chosen_parameters__meta: text('chosen_parameters__meta'),
    data__subject_data: text('data__subject_data'),
    data__message: bytea('data__message'),
    data__signature: bytea('data__signature'),
    data__entry_count: integer('data__entry_count'),
    data__entries: text('data__entries'),
    data__meta: text('data__meta'),
    results__certified_entry_count: integer('results__certified_entry_count'),
    results__meta: text('results__meta'),
  },
  (t) => [
    foreignKey({
      name: 'evidence_items_agent_id_attestation_index_fkey',
      columns: [t.agent_id, t.attestation_index],
      foreignColumns: [attestations.agent_id, attestations.index],
    }),
  ],
)

/**
 * Push-mode authentication sessions (`5a8b2c3d4e6f`: tokens stored hashed). `agent_id` has no
 * foreign key on purpose: sessions survive agent deletion and re-enrolment.
 */
export const sessions = pgTable(
  'sessions',
  {
    session_id: text('session_id').primaryKey(),
    /** PBKDF2 hash of the bearer token (hex); the token itself is never stored. */
    token_hash: text('token_hash').notNull(),
    token_salt: text('token_salt').notNull(),
    agent_id: text('agent_id'),
    active: boolean('active'),
    nonce: bytea('nonce'),
    hash_algorithm: text('hash_algorithm'),
    signing_scheme: text('signing_scheme'),
    ak_attest: bytea('ak_attest'),
    ak_sign: bytea('ak_sign'),
    nonce_created_at: text('nonce_created_at'),
    nonce_expires_at: text('nonce_expires_at'),
    pop_received_at: text('pop_received_at'),
    token_expires_at: text('token_expires_at'),
  },
  (t) => [index('ix_sessions_agent_id').on(t.agent_id)],
)

/** The registrar's agents (`registrar` engine), one row per registered agent. */
export const registrarmain = pgTable('registrarmain', {
  agent_id: text('agent_id').primaryKey(),
  /** HMAC key for the activation challenge (base64). */
  key: text('key'),
  aik_tpm: text('aik_tpm'),
  /** EK certificate, base64 DER. */
  ekcert: text('ekcert'),
  ek_tpm: text('ek_tpm'),
  iak_tpm: text('iak_tpm'),
  idevid_tpm: text('idevid_tpm'),
  iak_cert: text('iak_cert'),
  idevid_cert: text('idevid_cert'),
  mtls_cert: text('mtls_cert'),
  virtual: boolean('virtual'),
  ip: text('ip'),
  port: integer('port'),
  active: boolean('active'),
  provider_keys: jsonb('provider_keys'),
  regcount: integer('regcount'),
  /**
   * keylime-ts addition: the registrar's EK certificate verdict at registration (`trusted`,
   * `untrusted`, `expired`, `invalid`, `absent`, `no_store`); upstream leaves this to the tenant.
   */
  ek_cert_verdict: text('ek_cert_verdict'),
  /** keylime-ts addition: why the verdict was reached (issuer, error), never key material. */
  ek_cert_detail: text('ek_cert_detail'),
  /** keylime-ts addition: when the verdict was reached (epoch seconds). */
  ek_cert_checked_at: bigint('ek_cert_checked_at', { mode: 'number' }),
  /** keylime-ts addition: TCG tpmManufacturer from the EK certificate SAN (e.g. `id:4E544300`). */
  tpm_manufacturer: text('tpm_manufacturer'),
  /** keylime-ts addition: TCG tpmModel from the EK certificate SAN. */
  tpm_model: text('tpm_model'),
  /** keylime-ts addition: TCG tpmVersion (firmware) from the EK certificate SAN. */
  tpm_version: text('tpm_version'),
  /**
   * keylime-ts addition: the challenge key of a re-registration of an activated agent, awaiting
   * its activation; until then the activated record stays as it is (issue 17, finding 2).
   */
  pending_key: text('pending_key'),
  /** keylime-ts addition: the columns that re-registration writes once it is activated. */
  pending_values: jsonb('pending_values'),
})
