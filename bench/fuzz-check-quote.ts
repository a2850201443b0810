/**
 * Long fuzz run of the agent-answer checks (issue 17): `checkQuoteAnswer` with whole hostile
 * `quotes/integrity` answers and the `/verify/evidence` evaluation with hostile bodies
 * (`test/support/fuzz-check-quote.ts`, `fuzz-evidence.ts`). Prints, per target, the cases, time,
 * slowest case, cases per outcome and per mutation, and any failure (a throw, a slow case or an
 * incoherent result; its caseSeed rebuilds the case). Exits 1 on any failure.
 *
 * Usage: bun bench/fuzz-check-quote.ts [cases=1000000] [seed=1] [evidenceCases=cases]
 *
 * @module
 */
import 'reflect-metadata'
import { buildFuzzKit } from '../test/support/answer-fuzz-kit.ts'
import { type AnswerFuzzReport, fuzzCheckQuote } from '../test/support/fuzz-check-quote.ts'
import { fuzzEvidence } from '../test/support/fuzz-evidence.ts'
import { freshSoftTpm } from '../test/support/fleet/soft-tpm.ts'

const cases = Number(process.argv[2] ?? 1_000_000)
const seed = Number(process.argv[3] ?? 1)
const evidenceCases = Number(process.argv[4] ?? cases)
const kit = buildFuzzKit(freshSoftTpm())

function print(r: AnswerFuzzReport, ms: number): void {
  const byCount = (o: Record<string, number>) =>
    Object.fromEntries(Object.entries(o).sort((a, b) => b[1] - a[1]))
  console.log(
    `${r.name}: ${r.cases} cases in ${(ms / 1000).toFixed(1)} s (${((ms * 1000) / r.cases).toFixed(0)} µs/case), ` +
      `slowest ${r.maxMs.toFixed(1)} ms, failures ${r.failed}`,
  )
  if (r.slowest !== undefined) {
    const s = r.slowest
    console.log(`  slowest: case ${s.index} seed ${s.caseSeed} [${s.mutations.join(', ')}]`)
  }
  console.log(`  outcomes: ${JSON.stringify(byCount(r.outcomes))}`)
  console.log(`  mutations: ${JSON.stringify(byCount(r.mutations))}`)
  for (const f of r.failures) {
    console.log(
      `  FAIL case ${f.index} seed ${f.caseSeed} [${f.mutations.join(', ')}]: ${f.problem}`,
    )
  }
}

let failed = 0
for (const [run, n] of [
  [fuzzCheckQuote, cases],
  [fuzzEvidence, evidenceCases],
] as const) {
  if (n <= 0) continue
  const t0 = performance.now()
  const r = run(kit, { cases: n, seed })
  print(r, performance.now() - t0)
  failed += r.failed
}
process.exit(failed === 0 ? 0 : 1)
