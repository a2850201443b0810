DROP INDEX "ix_verifiermain_lease";--> statement-breakpoint
CREATE INDEX "ix_verifiermain_verifier_id" ON "verifiermain" USING btree ("verifier_id");--> statement-breakpoint
-- Room on each page for the new version of a row: a round's write then stays a heap-only (HOT) update.
ALTER TABLE "verifiermain" SET (fillfactor = 80);
