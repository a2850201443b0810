/** Unit tests: exclude-regex semantics, binary ↔ ASCII, policy schema paths, state JSON. */

import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { imaStateFromJSON } from './ima-agent-state.ts'
import { binaryListToAscii } from './parse-binary-list.ts'
import { compileExcludeList } from './python-regex.ts'
import { emptyRuntimePolicy, validateRuntimePolicy } from './runtime-policy.ts'

const FIX = join(import.meta.dir, '../../test/fixtures/ima')

describe('exclude list (Python re.match)', () => {
  test('anchored at the start only, alternatives OR-ed, Python named groups translated', () => {
    const re = compileExcludeList(['/tmp', 'boot_aggregate$', '(?P<d>/var)/log/(?P=d)?'])
    expect(re?.test('/tmpfoo/x')).toBe(true)
    expect(re?.test('/x/tmp')).toBe(false)
    expect(re?.test('boot_aggregate')).toBe(true)
    expect(re?.test('boot_aggregate2')).toBe(false)
    expect(re?.test('/var/log/messages')).toBe(true)
  })
  test('bad regex is a typed error naming the entry', () => {
    expect(() => compileExcludeList(['ok', '(unclosed'])).toThrow('excludes[1]')
  })
})

test('binary list renders to the same ASCII text (real guest log)', () => {
  const bin = new Uint8Array(readFileSync(join(FIX, 'vm/b/binary_runtime_measurements')))
  expect(binaryListToAscii(bin)).toBe(
    readFileSync(join(FIX, 'vm/b/ascii_runtime_measurements'), 'utf8'),
  )
  expect(() => binaryListToAscii(bin.subarray(0, bin.length - 3))).toThrow(
    'line 62: template data length out of bounds',
  )
})

test('policy schema errors carry the JSON path', () => {
  const p = emptyRuntimePolicy() as unknown as Record<string, unknown>
  p.digests = { '/usr/bin/ls': ['XYZ'] }
  expect(() => validateRuntimePolicy(p)).toThrow('$.digests["/usr/bin/ls"][0]')
  const q = emptyRuntimePolicy() as unknown as Record<string, unknown>
  delete q.excludes
  expect(() => validateRuntimePolicy(q)).toThrow('missing required property "excludes"')
})

test('state JSON is validated', () => {
  expect(() => imaStateFromJSON({ next_ima_ml_entry: -1, boottime: 0, pcr10: {} })).toThrow(
    'next_ima_ml_entry',
  )
  expect(() =>
    imaStateFromJSON({ next_ima_ml_entry: 1, boottime: 0, pcr10: { sha256: 'ab' } }),
  ).toThrow('pcr10.sha256')
})

describe('exclude list runs in linear time on agent-chosen names (finding 9 audit)', () => {
  // Ordinary-looking excludes that backtrack super-linearly in RegExp on a long name that does
  // not match: at c9aa72c the first took ~2–6 s on a 4 KiB name and ~2 min on 16 KiB.
  const hostile: Array<[string, (n: number) => string]> = [
    ['/usr/.*/.*/.*\\.so', (n) => `/usr/${'a/'.repeat(n / 2 - 4)}x`],
    ['/var/.*-.*-.*\\.log$', (n) => `/var/${'-'.repeat(n - 6)}x`],
    ['/opt/(\\w+/?)+\\.so', (n) => `/opt/${'a'.repeat(n - 6)}!`], // exponential
  ]
  for (const [exclude, make] of hostile) {
    test(exclude, () => {
      const re = compileExcludeList(['/tmp/.*', exclude])
      for (const n of [4096, 16 * 1024]) {
        const t0 = performance.now()
        expect(re?.test(make(n))).toBe(false)
        expect(performance.now() - t0).toBeLessThan(100)
      }
    })
  }

  test('long lists are split over several automata; back-references keep a RegExp', () => {
    const excludes = Array.from({ length: 300 }, (_, i) => `/opt/app${i}/.*`)
    excludes.push('(?P<d>/srv)/(?P=d)')
    const re = compileExcludeList(excludes)
    expect(re?.test('/opt/app0/x')).toBe(true)
    expect(re?.test('/opt/app299/x')).toBe(true)
    expect(re?.test('/opt/app300/x')).toBe(false)
    expect(re?.test('/srv//srv')).toBe(true)
    expect(re?.test('/srv/x')).toBe(false)
  })
})
