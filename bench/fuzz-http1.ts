/**
 * Long fuzz run over the HTTP/1.1 response reader (test/support/fuzz/http1-target.ts): N mutated
 * answers (default 1,000,000), each fed in random pieces, seeded; prints accepted/rejected counts,
 * rejection codes, the slowest case and any failures (an untyped error or a slow case; each
 * failure's caseSeed reproduces its input with `mutate(seeds, caseSeed)`).
 *
 * Usage: bun bench/fuzz-http1.ts [cases=1000000] [seed=1]
 *
 * @module
 */
import {
  http1FuzzSeeds,
  isHttp1TypedError,
  readHttp1InPieces,
} from '../test/support/fuzz/http1-target.ts'
import { fuzzParser } from '../test/support/fuzz/fuzz-parser.ts'

const cases = Number(process.argv[2] ?? 1_000_000)
const seed = Number(process.argv[3] ?? 1)
const t0 = performance.now()
const r = fuzzParser('HTTP/1 response', http1FuzzSeeds(), readHttp1InPieces, {
  cases,
  seed,
  isTypedError: isHttp1TypedError,
})
const s = ((performance.now() - t0) / 1000).toFixed(1)
console.log(
  `${r.name}: ${r.cases} cases in ${s} s, ${r.accepted} accepted, ${r.rejected} rejected, ` +
    `slowest ${r.maxMs.toFixed(2)} ms`,
)
console.log(`  rejections: ${JSON.stringify(r.byCode)}`)
for (const f of r.failures) console.log(`  FAILURE #${f.index} seed ${f.caseSeed}: ${f.problem}`)
process.exit(r.failures.length === 0 ? 0 : 1)
