/**
 * Long fuzz run of the IMA parsers: `bun bench/fuzz-ima.ts [cases=1000000] [seed=1]`.
 * Exits 1 on any untyped error or slow case.
 */

import 'reflect-metadata'
import { fuzzParser } from '../test/support/fuzz/fuzz-parser.ts'
import { IMA_FUZZ_TARGETS, imaFuzzSeeds } from '../test/support/fuzz/ima-targets.ts'

const cases = Number(process.argv[2] ?? 1_000_000)
const seed = Number(process.argv[3] ?? 1)
const seeds = imaFuzzSeeds()
let bad = 0
for (const name of ['ascii', 'binary', 'policy'] as const) {
  const t0 = performance.now()
  const r = fuzzParser(name, seeds[name], IMA_FUZZ_TARGETS[name], { cases, seed })
  bad += r.failures.length
  console.log(
    `${name}: ${r.cases} cases, accepted ${r.accepted}, rejected ${r.rejected}, max ${r.maxMs.toFixed(1)} ms, ${((performance.now() - t0) / 1000).toFixed(1)} s, failures ${r.failures.length}`,
  )
  for (const f of r.failures.slice(0, 5)) console.log('  ', f.problem, f.caseSeed)
}
process.exit(bad === 0 ? 0 : 1)
