/**
 * Long fuzz run over the TPM parsers (test/support/fuzz/fuzz-parser.ts): N mutated cases per parser (default
 * 1,000,000), seeded; prints accepted/rejected counts, rejection codes and any failures (each
 * failure's caseSeed reproduces its input with `mutate(seeds, caseSeed)`).
 *
 * Usage: bun bench/fuzz-tpm.ts [casesPerParser=1000000] [seed=1]
 *
 * @module
 */

import '../test/preload.ts'
import { parseTpmsAttest } from '../src/tpm/attest.ts'
import { isTpmError } from '../src/tpm/errors.ts'
import { fuzzParser } from '../test/support/fuzz/fuzz-parser.ts'
import { loadQuoteFixtures } from '../test/support/load-quote-fixtures.ts'
import { parsePcrBlob } from '../src/tpm/pcr-blob.ts'
import { parsePcrSelection } from '../src/tpm/pcr-selection.ts'
import { parseTpm2bPublic, toKeyObject } from '../src/tpm/public-area.ts'
import { parseQuoteString } from '../src/tpm/quote-string.ts'
import { parseTpmtSignature } from '../src/tpm/signature.ts'

const cases = Number(process.argv[2] ?? 1_000_000)
const seed = Number(process.argv[3] ?? 1)
const fx = loadQuoteFixtures()
const enc = new TextEncoder()
const dec = new TextDecoder('latin1')
const selections = fx.map((f) => {
  const a = f.attest
  // TPML_PCR_SELECTION sits before the trailing TPM2B pcrDigest: find it by parsing the attest
  const parsed = parseTpmsAttest(a)
  const digestLen = parsed.type === 0x8018 ? parsed.quote.pcrDigest.byteLength : 0
  const end = a.byteLength - 2 - digestLen
  const sel = parsed.type === 0x8018 ? parsed.quote.pcrSelect : []
  const size = 4 + sel.length * 6
  return a.subarray(end - size, end)
})

const parsers: [string, Uint8Array[], (b: Uint8Array) => unknown][] = [
  ['TPM2B_PUBLIC (+toKeyObject)', fx.map((f) => f.akPub), (b) => toKeyObject(parseTpm2bPublic(b))],
  ['TPMS_ATTEST', fx.map((f) => f.attest), parseTpmsAttest],
  ['TPMT_SIGNATURE', fx.map((f) => f.signature), parseTpmtSignature],
  ['TPML_PCR_SELECTION', selections, parsePcrSelection],
  ['PCR blob', fx.map((f) => f.pcrBlob), parsePcrBlob],
  ['quote string', fx.map((f) => enc.encode(f.quote)), (b) => parseQuoteString(dec.decode(b))],
]

let failed = 0
for (const [name, seeds, parse] of parsers) {
  const t0 = performance.now()
  const r = fuzzParser(name, seeds, parse, { cases, seed, isTypedError: isTpmError })
  const s = ((performance.now() - t0) / 1000).toFixed(1)
  console.log(
    `${name}: ${r.cases} cases in ${s}s, accepted ${r.accepted}, rejected ${r.rejected}, ` +
      `max ${r.maxMs.toFixed(2)} ms, failures ${r.failures.length}`,
  )
  console.log(`  codes: ${JSON.stringify(r.byCode)}`)
  for (const f of r.failures) console.log(`  FAIL case ${f.index} seed ${f.caseSeed}: ${f.problem}`)
  failed += r.failures.length
}
process.exit(failed === 0 ? 0 : 1)
