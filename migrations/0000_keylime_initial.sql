CREATE TABLE "allowlists" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"checksum" text,
	"generator" integer,
	"tpm_policy" text,
	"ima_policy" text,
	CONSTRAINT "uniq_allowlists0name" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "attestations" (
	"agent_id" text NOT NULL,
	"index" integer NOT NULL,
	"stage" text DEFAULT 'awaiting_evidence' NOT NULL,
	"evaluation" text DEFAULT 'pending' NOT NULL,
	"failure_reason" text,
	"system_info__boot_time" text NOT NULL,
	"capabilities_received_at" text NOT NULL,
	"challenges_expire_at" text,
	"evidence_received_at" text,
	"verification_completed_at" text,
	CONSTRAINT "attestations_pkey" PRIMARY KEY("agent_id","index")
);
--> statement-breakpoint
CREATE TABLE "evidence_items" (
	"id" serial PRIMARY KEY NOT NULL,
	"agent_id" text NOT NULL,
	"attestation_index" integer NOT NULL,
	"evidence_class" text NOT NULL,
	"evidence_type" text NOT NULL,
	"capabilities__component_version" text,
	"capabilities__evidence_version" text,
	"capabilities__signature_schemes" text,
	"capabilities__hash_algorithms" text,
	"capabilities__available_subjects" text,
	"capabilities__certification_keys" text,
	"capabilities__entry_count" integer,
	"capabilities__supports_partial_access" boolean,
	"capabilities__appendable" boolean,
	"capabilities__formats" text,
	"capabilities__meta" text,
	"chosen_parameters__challenge" "bytea",
	"chosen_parameters__signature_scheme" text,
	"chosen_parameters__hash_algorithm" text,
	"chosen_parameters__selected_subjects" text,
	"chosen_parameters__certification_key" text,
	"chosen_parameters__starting_offset" integer,
	"chosen_parameters__entry_count" integer,
	"chosen_parameters__format" text,
	"chosen_parameters__meta" text,
	"data__subject_data" text,
	"data__message" "bytea",
	"data__signature" "bytea",
	"data__entry_count" integer,
	"data__entries" text,
	"data__meta" text,
	"results__certified_entry_count" integer,
	"results__meta" text
);
--> statement-breakpoint
CREATE TABLE "mbpolicies" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"mb_policy" text,
	CONSTRAINT "uniq_mbpolicies_name" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "registrarmain" (
	"agent_id" text PRIMARY KEY NOT NULL,
	"key" text,
	"aik_tpm" text,
	"ekcert" text,
	"ek_tpm" text,
	"iak_tpm" text,
	"idevid_tpm" text,
	"iak_cert" text,
	"idevid_cert" text,
	"mtls_cert" text,
	"virtual" boolean,
	"ip" text,
	"port" integer,
	"active" boolean,
	"provider_keys" jsonb,
	"regcount" integer
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"session_id" text PRIMARY KEY NOT NULL,
	"token_hash" text NOT NULL,
	"token_salt" text NOT NULL,
	"agent_id" text,
	"active" boolean,
	"nonce" "bytea",
	"hash_algorithm" text,
	"signing_scheme" text,
	"ak_attest" "bytea",
	"ak_sign" "bytea",
	"nonce_created_at" text,
	"nonce_expires_at" text,
	"pop_received_at" text,
	"token_expires_at" text
);
--> statement-breakpoint
CREATE TABLE "verifiermain" (
	"agent_id" text PRIMARY KEY NOT NULL,
	"v" text,
	"ip" text,
	"port" integer,
	"operational_state" integer,
	"public_key" text,
	"tpm_policy" jsonb,
	"meta_data" text,
	"ima_policy_id" integer,
	"mb_policy_id" integer,
	"ima_sign_verification_keys" text,
	"revocation_key" text,
	"accept_tpm_hash_algs" jsonb,
	"accept_tpm_encryption_algs" jsonb,
	"accept_tpm_signing_algs" jsonb,
	"hash_alg" text,
	"enc_alg" text,
	"sign_alg" text,
	"boottime" bigint,
	"ima_pcrs" jsonb,
	"pcr10" "bytea",
	"next_ima_ml_entry" integer,
	"learned_ima_keyrings" jsonb,
	"severity_level" integer,
	"last_event_id" text,
	"verifier_id" text,
	"verifier_ip" text,
	"verifier_port" integer,
	"supported_version" text,
	"ak_tpm" text,
	"mtls_cert" text,
	"attestation_count" integer,
	"last_received_quote" bigint,
	"last_successful_attestation" bigint,
	"tpm_clockinfo" jsonb,
	"accept_attestations" boolean DEFAULT true NOT NULL,
	"consecutive_attestation_failures" integer
);
--> statement-breakpoint
ALTER TABLE "attestations" ADD CONSTRAINT "attestations_agent_id_fkey" FOREIGN KEY ("agent_id") REFERENCES "public"."verifiermain"("agent_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "evidence_items" ADD CONSTRAINT "evidence_items_agent_id_attestation_index_fkey" FOREIGN KEY ("agent_id","attestation_index") REFERENCES "public"."attestations"("agent_id","index") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "verifiermain" ADD CONSTRAINT "fk_verifiermain_allowlists" FOREIGN KEY ("ima_policy_id") REFERENCES "public"."allowlists"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "verifiermain" ADD CONSTRAINT "fk_verifiermain_mbpolicies" FOREIGN KEY ("mb_policy_id") REFERENCES "public"."mbpolicies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "ix_allowlists_checksum" ON "allowlists" USING btree ("checksum");--> statement-breakpoint
CREATE INDEX "ix_sessions_agent_id" ON "sessions" USING btree ("agent_id");