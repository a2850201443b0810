/**
 * Parsers on hostile inputs (issue 17, findings 9 and 11): CPU time of the INI reader on 1 MiB
 * lines that backtracked before, and of the payload-zip reader on the archives that were slow or
 * unsafe, next to an ordinary payload. Median of `runs` after one warm-up.
 *
 *   bun bench/hostile-inputs.ts [runs=9]
 *
 * @module
 */
import { deflateRawSync } from 'node:zlib'
import { zipSync } from 'fflate'
import { parseIni } from '../src/config/parse-ini.ts'
import { readZip } from '../src/protocol/read-zip.ts'
import { buildZip } from '../test/support/zip-builder.ts'

const RUNS = Number(process.argv[2] ?? 9)
const MiB = 1024 * 1024

/** Median CPU milliseconds of `fn` (process.cpuUsage, user + system). */
function cpuMs(fn: () => unknown): number {
  const run = () => {
    try {
      fn()
    } catch {
      // rejected inputs are the point
    }
  }
  run()
  const times: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.cpuUsage()
    run()
    const d = process.cpuUsage(t0)
    times.push((d.user + d.system) / 1000)
  }
  return times.sort((a, b) => a - b)[RUNS >> 1] as number
}

const ini: Array<[string, string]> = [
  ['key + 1 MiB of spaces + x (no delimiter)', `[s]\nkey${' '.repeat(MiB - 16)}x\n`],
  ['1 MiB of "a " (no delimiter)', `[s]\n${'a '.repeat(MiB / 2 - 8)}b\n`],
  ['key + 1 MiB of spaces + "= v"', `[s]\nkey${' '.repeat(MiB - 16)}= v\n`],
  ['262,000 continuation lines', `[s]\nk = v\n${'  x\n'.repeat(MiB / 4 - 8)}`],
]
for (const [name, text] of ini) {
  console.log(`INI ${name}: ${cpuMs(() => parseIni(text, 'x.conf')).toFixed(2)} ms CPU`)
}

const bytes = (s: string) => new TextEncoder().encode(s)
const zeros = new Uint8Array(32 * MiB)
const zips: Array<[string, Uint8Array]> = [
  [
    'ordinary payload (5 files, 60 KiB)',
    zipSync({
      'autorun.sh': bytes('#!/bin/sh\n'),
      action_list: bytes('local_action\n'),
      'RevocationNotifier-cert.crt': bytes('x'.repeat(2000)),
      'd/a.bin': new Uint8Array(30_000).map((_, i) => i * 7),
      'd/b.txt': bytes('hello '.repeat(5000)),
    }),
  ],
  [
    'zip64 end record claiming 65,535 entries',
    buildZip([{ name: 'a', data: bytes('x') }], { zip64: { count: 65_535 } }),
  ],
  ['a and a/b', buildZip([{ name: 'a' }, { name: 'a/b' }])],
  [
    '32 MiB deflate bomb',
    buildZip([{ name: 'z', data: zeros, raw: new Uint8Array(deflateRawSync(zeros)), method: 8 }]),
  ],
  ['4,096 empty entries', buildZip(Array.from({ length: 4096 }, (_, i) => ({ name: `f${i}` })))],
]
for (const [name, zip] of zips) {
  console.log(`zip ${name} (${zip.length} B): ${cpuMs(() => readZip(zip)).toFixed(3)} ms CPU`)
}
