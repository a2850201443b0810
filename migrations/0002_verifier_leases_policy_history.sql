CREATE TABLE "allowlists_history" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"checksum" text,
	"generator" integer,
	"tpm_policy" text,
	"ima_policy" text,
	"replaced_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "mbpolicies_history" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"mb_policy" text,
	"replaced_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "verifier_instances" (
	"instance_id" text PRIMARY KEY NOT NULL,
	"verifier_id" text NOT NULL,
	"heartbeat" bigint NOT NULL,
	"started" bigint NOT NULL,
	"host" text
);
--> statement-breakpoint
ALTER TABLE "allowlists" ADD COLUMN "version" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "mbpolicies" ADD COLUMN "version" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "verifiermain" ADD COLUMN "lease_owner" text;--> statement-breakpoint
ALTER TABLE "verifiermain" ADD COLUMN "lease_expires" bigint;--> statement-breakpoint
CREATE INDEX "ix_allowlists_history_name" ON "allowlists_history" USING btree ("name","version");--> statement-breakpoint
CREATE INDEX "ix_mbpolicies_history_name" ON "mbpolicies_history" USING btree ("name","version");--> statement-breakpoint
CREATE INDEX "ix_verifier_instances_verifier_id" ON "verifier_instances" USING btree ("verifier_id");--> statement-breakpoint
CREATE INDEX "ix_verifiermain_lease" ON "verifiermain" USING btree ("verifier_id","lease_expires");