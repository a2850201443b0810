/** Unit tests: exclude-regex semantics, binary ↔ ASCII, policy schema paths, state JSON. */

import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { imaStateFromJSON } from './ima-agent-state.ts'
import { parseAsciiList } from './parse-ascii-list.ts'
import { binaryListToAscii, parseBinaryList } from './parse-binary-list.ts'
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

/** One binary ima-sig entry (little-endian framing, sha1 template hash) with `sig` as its sig field. */
function binaryImaSigEntry(sig: Uint8Array): Uint8Array {
  const u32 = (n: number) => Buffer.from(new Uint32Array([n]).buffer)
  const fieldOf = (b: Uint8Array) => Buffer.concat([u32(b.length), b])
  const data = Buffer.concat([
    fieldOf(Buffer.concat([Buffer.from('sha256:\0'), Buffer.alloc(32, 7)])),
    fieldOf(Buffer.from('/usr/bin/x\0')),
    fieldOf(sig),
  ])
  const name = Buffer.from('ima-sig')
  return Buffer.concat([u32(10), Buffer.alloc(20, 1), u32(name.length), name, fieldOf(data)])
}

test('binary list: a badly framed ima-sig signature is dropped and the entry kept (as the ASCII parser)', () => {
  const framed = Buffer.from('030204aabbccdd0002eeff', 'hex')
  expect(parseBinaryList(binaryImaSigEntry(framed))[0]?.sig).toEqual(new Uint8Array(framed))
  // sig_size says 5 bytes, 2 follow: the kernel records such an xattr unchecked
  const bad = Buffer.from('030204aabbccdd0005eeff', 'hex')
  const [entry] = parseBinaryList(binaryImaSigEntry(bad))
  expect(entry?.name).toBe('/usr/bin/x')
  expect(entry?.sig).toBeNull()
})

test('ASCII ima-modsig: a badly framed signature is dropped as for ima-sig, not a parser error', () => {
  const d = (b: string) => `sha256:${b.repeat(32)}`
  const line = (sig: string) =>
    `10 ${'11'.repeat(20)} ima-modsig ${d('07')} /usr/bin/x ${sig} ${d('08')} 3082\n`
  expect([...parseAsciiList(line('030204aabbccdd0002eeff'))][0]?.sig).not.toBeNull()
  const [entry] = [...parseAsciiList(line('030204aabbccdd0005eeff'))]
  expect(entry?.name).toBe('/usr/bin/x')
  expect(entry?.sig).toBeNull()
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
