import { describe, expect, test } from 'bun:test'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { readMigrationFiles } from 'drizzle-orm/migrator'
import { embeddedMigrations, MIGRATION_SQL } from './embedded-migrations.ts'

const folder = join(import.meta.dir, '../../migrations')

describe('embeddedMigrations', () => {
  test("equals what drizzle's readMigrationFiles builds from migrations/", () => {
    const fromFolder = readMigrationFiles({ migrationsFolder: folder })
    expect(embeddedMigrations()).toEqual(fromFolder)
    expect(fromFolder.length).toBeGreaterThan(0)
  })

  test('embeds every .sql file of migrations/', () => {
    const files = readdirSync(folder)
      .filter((name) => name.endsWith('.sql'))
      .map((name) => name.slice(0, -4))
    expect(Object.keys(MIGRATION_SQL).sort()).toEqual(files.sort())
  })

  test('the initial migration creates the seven upstream tables', () => {
    const statements = embeddedMigrations()[0]?.sql.join('\n') ?? ''
    for (const table of [
      'verifiermain',
      'allowlists',
      'mbpolicies',
      'attestations',
      'evidence_items',
      'sessions',
      'registrarmain',
    ]) {
      expect(statements).toContain(`CREATE TABLE "${table}"`)
    }
    expect(statements).toContain('CONSTRAINT "uniq_allowlists0name" UNIQUE("name")')
  })
})
