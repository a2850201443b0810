ALTER TABLE "registrarmain" ADD COLUMN "pending_key" text;--> statement-breakpoint
ALTER TABLE "registrarmain" ADD COLUMN "pending_values" jsonb;