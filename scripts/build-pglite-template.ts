/**
 * Builds `src/db/assets/pglite-template.tar.zst`: the data directory `initdb` produces in the
 * installed PGlite, as a zstd-compressed tar (about 1.7 MB; the gzip dump is 4.5 MB), plus
 * `pglite-template.json` recording the PGlite version it came from.
 *
 * Re-run after upgrading `@electric-sql/pglite`:
 *
 * ```sh
 * bun scripts/build-pglite-template.ts
 * ```
 *
 * `load-pglite-assets.test.ts` fails while the template is older than the installed PGlite.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'

/** Where the template and its metadata are written. */
export const TEMPLATE_DIR = join(import.meta.dir, '../src/db/assets')

/** Version of the installed PGlite package, read from its package.json. */
export function installedPgliteVersion(): string {
  const pkg = join(import.meta.dir, '../node_modules/@electric-sql/pglite/package.json')
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version
}

/** Runs initdb in memory and writes the template files; returns their sizes in bytes. */
export async function buildPgliteTemplate(): Promise<{ tar: number; zst: number }> {
  const pg = await PGlite.create('memory://')
  let tar: Uint8Array
  try {
    tar = new Uint8Array(await (await pg.dumpDataDir('none')).arrayBuffer())
  } finally {
    await pg.close()
  }
  const zst = Bun.zstdCompressSync(tar, { level: 19 })
  await Bun.write(join(TEMPLATE_DIR, 'pglite-template.tar.zst'), zst)
  await Bun.write(
    join(TEMPLATE_DIR, 'pglite-template.json'),
    `${JSON.stringify({ pglite: installedPgliteVersion(), created: new Date().toISOString() }, null, 2)}\n`,
  )
  return { tar: tar.length, zst: zst.length }
}

if (import.meta.main) {
  const sizes = await buildPgliteTemplate()
  console.log(`wrote ${TEMPLATE_DIR}/pglite-template.tar.zst`, sizes)
}
