ALTER TABLE "registrarmain" ADD COLUMN "ek_cert_verdict" text;--> statement-breakpoint
ALTER TABLE "registrarmain" ADD COLUMN "ek_cert_detail" text;--> statement-breakpoint
ALTER TABLE "registrarmain" ADD COLUMN "ek_cert_checked_at" bigint;--> statement-breakpoint
ALTER TABLE "registrarmain" ADD COLUMN "tpm_manufacturer" text;--> statement-breakpoint
ALTER TABLE "registrarmain" ADD COLUMN "tpm_model" text;--> statement-breakpoint
ALTER TABLE "registrarmain" ADD COLUMN "tpm_version" text;