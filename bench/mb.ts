/**
 * Measured-boot benchmark: events parsed + replayed per second on real logs, and the full verifier
 * stage (parse + decode + replay + PCR compare + `example` policy). `bun bench/mb.ts [runs=7]`;
 * prints the median of `runs` one-second rounds after warm-up.
 */
import { resolve } from 'node:path'
import { evaluateMeasuredBoot } from '../src/mb/evaluate-measured-boot.ts'
import { parseEventLog } from '../src/mb/parse-event-log.ts'
import { replayEventLog } from '../src/mb/replay-event-log.ts'
import { createRefstate } from '../src/policy-tools/create-refstate.ts'

const runs = Number(process.argv[2] ?? 7)
const DIR = resolve(import.meta.dir, '../test/fixtures/mb')

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}
function measure(f: () => void): number {
  for (let i = 0; i < 200; i++) f()
  const rates: number[] = []
  for (let r = 0; r < runs; r++) {
    let n = 0
    const t0 = performance.now()
    while (performance.now() - t0 < 1000) {
      f()
      n++
    }
    rates.push((n * 1000) / (performance.now() - t0))
  }
  return median(rates)
}

for (const file of [
  'upstream/binary_bios_measurements-secureboot',
  'upstream/binary_bios_measurements',
  'vm-plain/binary_bios_measurements',
]) {
  const bytes = await Bun.file(`${DIR}/${file}`).bytes()
  const log = parseEventLog(bytes)
  const n = log.events.length
  const { pcrs } = replayEventLog(log)
  const quotedPcrs = new Map([['sha256', pcrs.get('sha256') as Map<number, Uint8Array>]])
  const refstate = createRefstate(log, { withoutSecureboot: true })
  const raw = measure(() => replayEventLog(parseEventLog(bytes, { decode: false })))
  const full = measure(() => replayEventLog(parseEventLog(bytes)))
  const stage = measure(() => {
    const r = evaluateMeasuredBoot({
      log: bytes,
      quotedPcrs,
      bank: 'sha256',
      policyName: 'example',
      refstate,
      evaluate: 'always',
    })
    if (!r.ok && !file.includes('upstream/binary_bios_measurements'))
      throw new Error(JSON.stringify(r.failures))
  })
  console.log(
    JSON.stringify({
      file,
      events: n,
      bytes: bytes.length,
      'parse+replay events/s': Math.round(raw * n),
      'parse+replay ms/log': +(1000 / raw).toFixed(3),
      'parse+decode+replay events/s': Math.round(full * n),
      'parse+decode+replay ms/log': +(1000 / full).toFixed(3),
      'stage (example policy) ms/log': +(1000 / stage).toFixed(3),
    }),
  )
}
