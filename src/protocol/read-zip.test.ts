import { describe, expect, test } from 'bun:test'
import { deflateRawSync } from 'node:zlib'
import { zipSync } from 'fflate'
import { buildZip, type RawZipEntry } from '../../test/support/zip-builder.ts'
import { readZip, ZipError, type ZipErrorCode } from './read-zip.ts'

const bytes = (s: string) => new TextEncoder().encode(s)

function rejects(zip: Uint8Array, code: ZipErrorCode, opts: Parameters<typeof readZip>[1] = {}) {
  const t0 = performance.now()
  let err: unknown
  try {
    readZip(zip, opts)
  } catch (e) {
    err = e
  }
  expect(performance.now() - t0).toBeLessThan(100)
  expect(err).toBeInstanceOf(ZipError)
  expect((err as ZipError).code).toBe(code)
  return err as ZipError
}

describe('readZip', () => {
  test('reads what fflate writes: stored and deflated files, directories, UTF-8 names', () => {
    const zip = zipSync({
      'autorun.sh': bytes('#!/bin/sh\necho hi\n'),
      'dir/': new Uint8Array(0),
      'dir/ünï.txt': [bytes('x'.repeat(5000)), { level: 9 }],
    })
    const entries = readZip(zip)
    expect(entries.map((e) => [e.name, e.isDirectory, e.data.length])).toEqual([
      ['autorun.sh', false, 18],
      ['dir', true, 0],
      ['dir/ünï.txt', false, 5000],
    ])
  })

  test('an empty archive has no entries', () => {
    expect(readZip(buildZip([]))).toEqual([])
  })

  describe('names', () => {
    const cases: Array<[string, RawZipEntry[]]> = [
      ['a file and a directory of the same name (a, a/b)', [{ name: 'a' }, { name: 'a/b' }]],
      ['the same, directory first (a/b, a)', [{ name: 'a/b' }, { name: 'a' }]],
      ['an explicit directory and a file (a/, a)', [{ name: 'a/' }, { name: 'a' }]],
      ['a duplicate file', [{ name: 'x' }, { name: 'x' }]],
      ['a duplicate directory', [{ name: 'd/' }, { name: 'd/' }]],
      ['an absolute path', [{ name: '/etc/passwd' }]],
      ['a drive letter', [{ name: 'C:/x' }]],
      ['a parent segment', [{ name: 'a/../../x' }]],
      ['a leading parent segment', [{ name: '../x' }]],
      ['a dot segment', [{ name: 'a/./b' }]],
      ['an empty segment', [{ name: 'a//b' }]],
      ['a backslash', [{ name: 'a\\..\\x' }]],
      ['a NUL', [{ name: 'a\0b' }]],
      ['a newline', [{ name: 'a\nb' }]],
      ['an empty name', [{ name: '' }]],
      ['a 256-byte segment', [{ name: `d/${'n'.repeat(256)}` }]],
      ['a 4097-character name', [{ name: `${'n/'.repeat(2048)}x` }]],
      ['invalid UTF-8 with the UTF-8 flag', [{ name: new Uint8Array([0x61, 0xff]), flags: 0x800 }]],
    ]
    for (const [what, entries] of cases) {
      test(`refuses ${what}`, () => {
        rejects(buildZip(entries), 'ERR_ZIP_ENTRY_NAME')
      })
    }
    test('refuses reserved names as files and as directories', () => {
      const reserved = ['decrypted_payload']
      rejects(buildZip([{ name: 'decrypted_payload' }]), 'ERR_ZIP_ENTRY_NAME', { reserved })
      rejects(buildZip([{ name: 'decrypted_payload/x' }]), 'ERR_ZIP_ENTRY_NAME', { reserved })
    })
  })

  describe('types', () => {
    test('refuses symlinks, FIFOs and devices (Unix mode in the external attributes)', () => {
      for (const mode of [0o120777, 0o010644, 0o020644, 0o060644, 0o140777]) {
        const zip = buildZip([{ name: 'link', data: bytes('/etc'), externalAttr: mode * 65536 }])
        rejects(zip, 'ERR_ZIP_UNSUPPORTED')
      }
    })
    test('refuses encrypted entries and unknown compression methods', () => {
      rejects(buildZip([{ name: 'x', flags: 1 }]), 'ERR_ZIP_UNSUPPORTED')
      rejects(buildZip([{ name: 'x', method: 12 }]), 'ERR_ZIP_UNSUPPORTED')
    })
  })

  describe('structure', () => {
    test('refuses the issue’s zip64 end record claiming 65,535 entries, on the count alone', () => {
      const zip = buildZip([{ name: 'a', data: bytes('hello') }], { zip64: { count: 65_535 } })
      expect(zip.length).toBeLessThan(256)
      rejects(zip, 'ERR_ZIP_LIMIT')
    })
    test('refuses entry counts the directory cannot hold, at any size', () => {
      for (const count of [2, 4000, 0xfffe]) {
        rejects(
          buildZip([{ name: 'a' }], { count }),
          count > 4096 ? 'ERR_ZIP_LIMIT' : 'ERR_ZIP_FORMAT',
        )
      }
      rejects(buildZip([{ name: 'a' }], { zip64: { count: 2 ** 40 } }), 'ERR_ZIP_LIMIT')
      rejects(buildZip([{ name: 'a' }], { zip64: { count: 3 } }), 'ERR_ZIP_FORMAT')
    })
    test('refuses a directory outside the archive, a missing end record, trailing junk', () => {
      rejects(buildZip([{ name: 'a' }], { cdOffset: 1_000_000 }), 'ERR_ZIP_FORMAT')
      rejects(buildZip([{ name: 'a' }], { cdSize: 1_000_000 }), 'ERR_ZIP_FORMAT')
      rejects(
        buildZip([{ name: 'a' }], { zip64: { count: 1, cdOffset: 2 ** 50 } }),
        'ERR_ZIP_FORMAT',
      )
      rejects(bytes('PK not a zip at all'), 'ERR_ZIP_FORMAT')
      rejects(
        buildZip([{ name: 'a' }], { trailer: bytes('junk'), commentLength: 2 }),
        'ERR_ZIP_FORMAT',
      )
      rejects(new Uint8Array(0), 'ERR_ZIP_FORMAT')
    })
    test('refuses entries whose data overlap or lie outside the archive', () => {
      const data = bytes('shared')
      rejects(
        buildZip([
          { name: 'a', data },
          { name: 'b', data, offset: 0 },
        ]),
        'ERR_ZIP_FORMAT',
      )
      rejects(buildZip([{ name: 'a', data, offset: 5000 }]), 'ERR_ZIP_FORMAT')
      rejects(buildZip([{ name: 'a', data, compressedSize: 5000, size: 5000 }]), 'ERR_ZIP_FORMAT')
    })
    test('refuses sizes and CRCs that do not match the data', () => {
      const data = bytes('x'.repeat(100))
      rejects(buildZip([{ name: 'a', data, method: 8, size: 50 }]), 'ERR_ZIP_FORMAT')
      rejects(buildZip([{ name: 'a', data, method: 8, size: 150 }]), 'ERR_ZIP_FORMAT')
      rejects(buildZip([{ name: 'a', data, method: 8, crc: 1 }]), 'ERR_ZIP_FORMAT')
      rejects(buildZip([{ name: 'a', data, size: 99 }]), 'ERR_ZIP_FORMAT')
      rejects(buildZip([{ name: 'd/', data }]), 'ERR_ZIP_FORMAT')
    })
  })

  describe('limits', () => {
    test('refuses more entries than allowed', () => {
      const many = Array.from({ length: 50 }, (_, i) => ({ name: `f${i}` }))
      rejects(buildZip(many), 'ERR_ZIP_LIMIT', { limits: { maxEntries: 49 } })
      expect(readZip(buildZip(many), { limits: { maxEntries: 50 } })).toHaveLength(50)
    })
    test('refuses more uncompressed bytes than allowed, before inflating', () => {
      const zip = buildZip([
        { name: 'a', data: new Uint8Array(600), method: 8 },
        { name: 'b', data: new Uint8Array(600), method: 8 },
      ])
      rejects(zip, 'ERR_ZIP_LIMIT', { limits: { maxTotalBytes: 1000 } })
    })
    test('refuses a deflate bomb by its ratio (32 MiB of zeros in ~32 KiB)', () => {
      const zeros = new Uint8Array(32 * 1024 * 1024)
      const raw = new Uint8Array(deflateRawSync(zeros))
      rejects(buildZip([{ name: 'zeros', data: zeros, raw, method: 8 }]), 'ERR_ZIP_LIMIT')
    })
    test('small entries may compress arbitrarily well', () => {
      const zip = buildZip([{ name: 'spaces', data: bytes(' '.repeat(60_000)), method: 8 }])
      expect(readZip(zip)[0]?.data.length).toBe(60_000)
    })
  })

  test('never throws anything but ZipError on mutated archives, each in bounded time', () => {
    const base = zipSync({
      'autorun.sh': bytes('#!/bin/sh\n'),
      'd/': new Uint8Array(0),
      'd/f.txt': [bytes('hello '.repeat(200)), { level: 6 }],
      'RevocationNotifier-cert.crt': bytes('-----BEGIN CERTIFICATE-----\n'),
    })
    let seed = 12345
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return (seed >>> 8) % n
    }
    let worst = 0
    let accepted = 0
    for (let i = 0; i < 20_000; i++) {
      const z = new Uint8Array(base)
      for (let k = 1 + rand(4); k > 0; k--) {
        const at = rand(z.length)
        z[at] = rand(3) === 0 ? 0xff : rand(256)
      }
      const cut = rand(10) === 0 ? z.subarray(0, rand(z.length)) : z
      const t0 = performance.now()
      try {
        readZip(cut)
        accepted++
      } catch (e) {
        if (!(e instanceof ZipError)) throw new Error(`case ${i}: untyped ${String(e)}`)
      }
      worst = Math.max(worst, performance.now() - t0)
    }
    // wall clock on a shared 2-core machine: a GC or scheduling pause reached ~200 ms under load;
    // a blow-up (inflating a bomb, a quadratic walk) costs seconds
    expect(worst).toBeLessThan(1000)
    expect(accepted).toBeGreaterThan(0)
  })
})
