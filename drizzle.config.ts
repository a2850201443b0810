/**
 * drizzle-kit configuration: one PostgreSQL-dialect schema, one `migrations/` folder used by both
 * PGlite and postgres.js. `bun x drizzle-kit generate` needs no database.
 *
 * @module
 */
import { defineConfig } from 'drizzle-kit'

/** drizzle-kit settings for `generate` (and `check`). */
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations',
})
