import { expect, test } from 'bun:test'
import { resolve } from 'node:path'
import { fuzzParser } from '../../test/support/fuzz/fuzz-parser.ts'
import { buildAgileLog, edgeCases, grubStyleEvents } from '../../test/fixtures/mb/synthetic.ts'
import { isMbError } from './errors.ts'
import { fuzzJsonTarget, fuzzLogTarget } from '../../test/support/fuzz/mb-targets.ts'
import { parseEventLog } from './parse-event-log.ts'

const DIR = resolve(import.meta.dir, '../../test/fixtures/mb')

test('fuzz: 5,000 mutated event logs give values or MbErrors, never crashes or hangs', async () => {
  const seeds = [
    await Bun.file(`${DIR}/vm-plain/binary_bios_measurements`).bytes(),
    await Bun.file(`${DIR}/upstream/binary_bios_measurements-secureboot`).bytes(),
    ...Object.values(edgeCases()),
  ]
  const report = fuzzParser('uefi-log', seeds, fuzzLogTarget, {
    cases: 5000,
    isTypedError: (e) => isMbError(e),
  })
  expect(report.failures).toEqual([])
  expect(report.accepted).toBeGreaterThan(100)
  expect(report.rejected).toBeGreaterThan(100)
}, 30_000)

test('fuzz: 5,000 mutated refstate / policy JSON documents give values or MbErrors', async () => {
  const enc = new TextEncoder()
  const seeds = [
    await Bun.file(`${DIR}/upstream/example_reference_state.json`).bytes(),
    enc.encode(
      JSON.stringify({
        name: 'p',
        default: 'accept',
        rules: [
          {
            match: { pcr: [0, 4], type: 'EV_IPL', fields: { String: 'a.*' } },
            digests: [{ sha256: '0xab' }],
            sequence: [{ sha1: '0x01' }],
            min: 0,
            max: 3,
          },
        ],
      }),
    ),
  ]
  const log = parseEventLog(buildAgileLog(grubStyleEvents()))
  const report = fuzzParser('mb-json', seeds, (b) => fuzzJsonTarget(b, log), {
    cases: 5000,
    isTypedError: (e) => isMbError(e),
  })
  expect(report.failures).toEqual([])
  expect(report.rejected).toBeGreaterThan(100)
}, 30_000)
