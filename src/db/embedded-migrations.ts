/**
 * The drizzle migrations of `migrations/`, bundled into the program.
 *
 * The SQL is imported as text and the journal as JSON, so the migrations travel inside a
 * `bun build --compile` binary without any CLI flag or file on disk. Each entry is built exactly
 * as drizzle's `readMigrationFiles` would build it from the folder (same statement split, same
 * sha256 hash), which `embedded-migrations.test.ts` checks against the folder.
 *
 * When `drizzle-kit generate` adds `migrations/NNNN_<name>.sql`, import it here and add it to
 * {@link MIGRATION_SQL}; the test fails until you do.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import journal from '../../migrations/meta/_journal.json' with { type: 'json' }
import m0000 from '../../migrations/0000_keylime_initial.sql' with { type: 'text' }
import m0001 from '../../migrations/0001_registrar_ek_verdict.sql' with { type: 'text' }
import m0002 from '../../migrations/0002_verifier_leases_policy_history.sql' with { type: 'text' }
import m0003 from '../../migrations/0003_verifiermain_hot_updates.sql' with { type: 'text' }
import m0004 from '../../migrations/0004_registrar_pending_registration.sql' with { type: 'text' }
import m0005 from '../../migrations/0005_verifier_push_mode.sql' with { type: 'text' }

/** One migration as drizzle's dialect `migrate()` consumes it (drizzle-orm `MigrationMeta`). */
export interface EmbeddedMigration {
  /** Statements, split at `--> statement-breakpoint`. */
  sql: string[]
  /** Whether the journal entry uses breakpoints. */
  bps: boolean
  /** The journal's `when` (ms); drizzle applies migrations newer than the last one recorded. */
  folderMillis: number
  /** sha256 (hex) of the whole SQL file. */
  hash: string
}

/** SQL text by journal tag. */
export const MIGRATION_SQL: Readonly<Record<string, string>> = {
  '0000_keylime_initial': m0000,
  '0001_registrar_ek_verdict': m0001,
  '0002_verifier_leases_policy_history': m0002,
  '0003_verifiermain_hot_updates': m0003,
  '0004_registrar_pending_registration': m0004,
  '0005_verifier_push_mode': m0005,
}

/**
 * Returns the migrations in journal order.
 *
 * @throws {Error} when a journal entry has no embedded SQL (a migration was generated but not
 *   added to {@link MIGRATION_SQL}).
 */
export function embeddedMigrations(): EmbeddedMigration[] {
  return journal.entries.map((entry) => {
    const text = MIGRATION_SQL[entry.tag]
    if (text === undefined) {
      throw new Error(`migration ${entry.tag} is in migrations/meta/_journal.json but not embedded`)
    }
    return {
      sql: text.split('--> statement-breakpoint'),
      bps: entry.breakpoints,
      folderMillis: entry.when,
      hash: createHash('sha256').update(text).digest('hex'),
    }
  })
}
