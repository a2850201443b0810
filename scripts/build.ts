/**
 * Builds the `keylime` executable: one self-contained file (Bun runtime + control plane, with the
 * migrations and PGlite assets embedded by static imports in `src/db`), plus the busybox-style
 * symlinks it dispatches on. Bytecode (`--bytecode`) makes a command start in ~10 ms instead of
 * ~90 ms: the tenant must answer fast. The verifier's check worker is a second entry point so
 * `new Worker(...)` finds it in the binary.
 *
 * ```sh
 * bun scripts/build.ts                   # dist/keylime + symlinks (what scripts/build.sh runs)
 * bun scripts/build.ts --out-dir DIR     # DIR/keylime + symlinks
 * ```
 *
 * Needs no shell: the Containerfile runs it (through `scripts/image-root.ts`) in bases without one.
 *
 * @module
 */
import { mkdirSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { PROGRAM_NAMES } from '../src/cli/resolve-command.ts'

/** The repository root (this file is `scripts/build.ts`). */
const ROOT = resolve(import.meta.dir, '..')

/**
 * Compiles `OUT_DIR/keylime` with the Bun running this script and links every
 * {@link PROGRAM_NAMES} entry to it; returns the binary's path.
 *
 * `bun build --compile` writes its temporary file into the working directory, so it runs in
 * `outDir` (the source tree may be a read-only mount, as in the Containerfile).
 *
 * @throws {Error} when the compile fails (its output is passed through).
 */
export function buildKeylime(outDir: string): string {
  const dir = resolve(outDir)
  mkdirSync(dir, { recursive: true })
  const bin = join(dir, 'keylime')
  const r = Bun.spawnSync(
    [
      process.execPath,
      'build',
      '--compile',
      '--bytecode',
      '--format=esm',
      '--minify-syntax',
      join(ROOT, 'src/main.ts'),
      join(ROOT, 'src/verifier/checks/check-worker.ts'),
      '--outfile',
      bin,
    ],
    { cwd: dir, stdout: 'inherit', stderr: 'inherit' },
  )
  if (r.exitCode !== 0) throw new Error(`bun build --compile exited ${r.exitCode}`)
  for (const name of PROGRAM_NAMES) {
    const link = join(dir, name)
    rmSync(link, { force: true })
    symlinkSync('keylime', link)
  }
  return bin
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { 'out-dir': { type: 'string' } } })
  const bin = buildKeylime(values['out-dir'] ?? join(ROOT, 'dist'))
  console.log(`${bin}: ${statSync(bin).size} bytes`)
}
