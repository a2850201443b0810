/**
 * Long fuzz run of the measured-boot parsers: `bun bench/fuzz-mb.ts [cases=1000000] [seed=1]`.
 * Runs the event-log target for `cases` inputs and the JSON target for cases/10; prints the reports and
 * exits 1 on any untyped error or slow case.
 */
import { resolve } from 'node:path'
import { isMbError } from '../src/mb/errors.ts'
import { fuzzJsonTarget, fuzzLogTarget } from '../test/support/fuzz/mb-targets.ts'
import { parseEventLog } from '../src/mb/parse-event-log.ts'
import { fuzzParser } from '../test/support/fuzz/fuzz-parser.ts'
import { buildAgileLog, edgeCases, grubStyleEvents } from '../test/fixtures/mb/synthetic.ts'

const cases = Number(process.argv[2] ?? 1_000_000)
const seed = Number(process.argv[3] ?? 1)
const DIR = resolve(import.meta.dir, '../test/fixtures/mb')
const seeds = [
  await Bun.file(`${DIR}/vm-plain/binary_bios_measurements`).bytes(),
  await Bun.file(`${DIR}/vm-secureboot/binary_bios_measurements`).bytes(),
  await Bun.file(`${DIR}/upstream/binary_bios_measurements`).bytes(),
  await Bun.file(`${DIR}/upstream/binary_bios_measurements-secureboot`).bytes(),
  ...Object.values(edgeCases()),
]
const t0 = performance.now()
const a = fuzzParser('uefi-log', seeds, fuzzLogTarget, {
  cases,
  seed,
  isTypedError: (e) => isMbError(e),
})
const log = parseEventLog(buildAgileLog(grubStyleEvents()))
const jsonSeeds = [await Bun.file(`${DIR}/upstream/example_reference_state.json`).bytes()]
const b = fuzzParser('mb-json', jsonSeeds, (x) => fuzzJsonTarget(x, log), {
  cases: Math.ceil(cases / 10),
  seed,
  isTypedError: (e) => isMbError(e),
})
for (const r of [a, b]) console.log(JSON.stringify({ ...r, failures: r.failures.slice(0, 5) }))
console.log(`elapsed ${((performance.now() - t0) / 1000).toFixed(1)} s`)
process.exit(a.failures.length + b.failures.length === 0 ? 0 : 1)
