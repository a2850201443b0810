/**
 * Control-plane start-up time: from process spawn to "keylime control plane started" (verifier +
 * registrar on embedded PGlite), on an empty KEYLIME_DIR (cv_ca and database created) and on a
 * restart (both reused), for the sources and the compiled dist/keylime.
 *
 *   bun bench/startup.ts [runs=5]
 *
 * @module
 */
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { controlPlaneEnv, MAIN_TS, spawnCollect } from '../test/support/control-plane-process.ts'

const runs = Number(process.argv[2] ?? 5)
const compiled = resolve(import.meta.dir, '../dist/keylime')

async function once(cmd: string[], env: Record<string, string>): Promise<number> {
  const t0 = performance.now()
  const run = spawnCollect(cmd, env)
  await run.waitFor(/keylime control plane started/, 30_000)
  const ms = performance.now() - t0
  await run.stop()
  return ms
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const variants: Array<[string, string[]]> = [
  ['source (bun src/main.ts)', [process.execPath, MAIN_TS]],
]
if (existsSync(compiled)) variants.push(['compiled (dist/keylime)', [compiled]])

for (const [label, cmd] of variants) {
  const cold: number[] = []
  const warm: number[] = []
  for (let i = 0; i < runs; i++) {
    const { env } = await controlPlaneEnv()
    cold.push(await once(cmd, env))
    warm.push(await once(cmd, env))
  }
  console.log(
    `${label}: empty KEYLIME_DIR median ${median(cold).toFixed(0)} ms (min ${Math.min(...cold).toFixed(0)}, max ${Math.max(...cold).toFixed(0)}); ` +
      `restart median ${median(warm).toFixed(0)} ms (min ${Math.min(...warm).toFixed(0)}, max ${Math.max(...warm).toFixed(0)})`,
  )
}
