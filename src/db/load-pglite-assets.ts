/**
 * PGlite's runtime artifacts, embedded and loaded once per process.
 *
 * `pglite.wasm`, `initdb.wasm` and `pglite.data` are imported `with { type: 'file' }`, so
 * `bun build --compile` embeds them (`/$bunfs/root/…`) and PGlite never looks for them next to
 * its own module, which fails inside a binary (`ENOENT /$bunfs/root/pglite.data`,
 * bun-and-tools.md §3). The same paths resolve into `node_modules` when running from source, so
 * both modes take one code path.
 *
 * `pglite-template.tar.zst` is a freshly initialised data directory (see
 * `scripts/build-pglite-template.ts`). Loading it replaces `initdb`, which takes 3–5 s under
 * WebAssembly, with a ~0.3 s untar, so the control plane starts on an empty `KEYLIME_DIR` well
 * within 2 s.
 *
 * @module
 */
import initdbWasmPath from '@electric-sql/pglite/initdb.wasm' with { type: 'file' }
import fsBundlePath from '@electric-sql/pglite/pglite.data' with { type: 'file' }
import pgliteWasmPath from '@electric-sql/pglite/pglite.wasm' with { type: 'file' }
import templatePath from './assets/pglite-template.tar.zst' with { type: 'file' }

/** Compiled modules and bundles to pass to `PGlite.create`. */
export interface PgliteAssets {
  /** The compiled PostgreSQL module. */
  pgliteWasmModule: WebAssembly.Module
  /** The compiled initdb module (used only when the template cannot be used). */
  initdbWasmModule: WebAssembly.Module
  /** PGlite's file-system bundle (share/, lib/, timezone data). */
  fsBundle: Blob
  /**
   * Returns an uncompressed tar (~40 MB) of a fresh data directory, for `loadDataDir`; it is
   * decompressed on each call (~50 ms) rather than kept in memory.
   */
  template(): Blob
}

let cached: Promise<PgliteAssets> | undefined

/** Paths of the embedded artifacts (for diagnostics and tests). */
export const PGLITE_ASSET_PATHS = {
  pgliteWasm: pgliteWasmPath,
  initdbWasm: initdbWasmPath,
  fsBundle: fsBundlePath,
  template: templatePath,
} as const

/** Compiles the WebAssembly modules once per process and returns the shared assets. */
export function loadPgliteAssets(): Promise<PgliteAssets> {
  cached ??= (async () => {
    const [pgliteWasmModule, initdbWasmModule, fsBytes] = await Promise.all([
      Bun.file(pgliteWasmPath)
        .arrayBuffer()
        .then((bytes) => WebAssembly.compile(bytes)),
      Bun.file(initdbWasmPath)
        .arrayBuffer()
        .then((bytes) => WebAssembly.compile(bytes)),
      Bun.file(fsBundlePath).arrayBuffer(),
    ])
    const templateZst = new Uint8Array(await Bun.file(templatePath).arrayBuffer())
    return {
      pgliteWasmModule,
      initdbWasmModule,
      fsBundle: new Blob([fsBytes]),
      template: () => new Blob([Bun.zstdDecompressSync(templateZst)]),
    }
  })()
  cached.catch(() => {
    cached = undefined
  })
  return cached
}
