import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { installedPgliteVersion } from '../../scripts/build-pglite-template.ts'
import { loadPgliteAssets, PGLITE_ASSET_PATHS } from './load-pglite-assets.ts'

describe('loadPgliteAssets', () => {
  test('the data-directory template was built with the installed PGlite', async () => {
    const meta = (await Bun.file(join(import.meta.dir, 'assets/pglite-template.json')).json()) as {
      pglite: string
    }
    // If this fails after upgrading @electric-sql/pglite: bun scripts/build-pglite-template.ts
    expect(meta.pglite).toBe(installedPgliteVersion())
  })

  test('compiles the modules once and shares them', async () => {
    const a = await loadPgliteAssets()
    const b = await loadPgliteAssets()
    expect(a).toBe(b)
    expect(a.pgliteWasmModule).toBeInstanceOf(WebAssembly.Module)
    expect(a.fsBundle.size).toBe(Bun.file(PGLITE_ASSET_PATHS.fsBundle).size)
  })

  test('the template is a tar of a data directory with PG_VERSION', async () => {
    const tar = new Uint8Array(await (await loadPgliteAssets()).template().arrayBuffer())
    const ascii = (from: number, to: number) =>
      new TextDecoder().decode(tar.subarray(from, to)).replace(/\0.*$/s, '')
    const names: string[] = []
    for (let at = 0; at + 512 <= tar.length && tar[at] !== 0;) {
      names.push(ascii(at, at + 100))
      const size = Number.parseInt(ascii(at + 124, at + 136).trim() || '0', 8)
      at += 512 + Math.ceil(size / 512) * 512
    }
    expect(names.some((name) => name.endsWith('/PG_VERSION'))).toBe(true)
    expect(names.some((name) => name.includes('/base/'))).toBe(true)
  })
})
