/**
 * `--ramdisk-dir`: runtime policies from initramfs images built by real tools (GNU cpio, gzip,
 * zstd, xz, lz4; test/fixtures/ima/make-initramfs.sh). Expected paths and digests are computed here
 * from the committed source trees (`initramfs/src/…`), independently of the cpio reader.
 */

import { describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createRuntimePolicy } from '../src/policy-tools/create-runtime-policy.ts'
import {
  runLegacyCreatePolicy,
  runPolicyCreateRuntime,
} from '../src/policy-tools/runtime-policy-cli.ts'
import { isImaError } from '../src/ima/errors.ts'
import { listInitramfsImages } from '../src/policy-tools/ramdisk-digests.ts'
import { readCpioArchive, readCpioStream } from '../src/policy-tools/read-cpio.ts'
import { initramfsFiles, readInitramfs } from '../src/policy-tools/read-initramfs.ts'
import { fuzzParser } from './support/fuzz/fuzz-parser.ts'

const FIX = resolve(import.meta.dir, 'fixtures/ima/initramfs')
type Digests = Record<string, string[]>

/** path (as IMA logs it) → digest, for every regular file of a source tree. */
function treeDigests(name: string, algo = 'sha256'): Record<string, string> {
  const root = join(FIX, 'src', name)
  const out: Record<string, string> = {}
  const walk = (dir: string) => {
    for (const n of readdirSync(dir)) {
      const p = join(dir, n)
      if (statSync(p).isDirectory()) walk(p)
      else
        out[p.slice(root.length).replaceAll(' ', '_')] = createHash(algo)
          .update(readFileSync(p))
          .digest('hex')
    }
  }
  walk(root)
  // the script adds usr/bin/foo-hardlink as a hard link of usr/bin/foo
  out['/usr/bin/foo-hardlink'] = out['/usr/bin/foo'] as string
  return out
}

/** Union of trees as a policy digest map (sorted digest lists). */
function expected(...trees: Record<string, string>[]): Digests {
  const m: Record<string, Set<string>> = {}
  for (const t of trees) {
    for (const [p, d] of Object.entries(t)) {
      m[p] ??= new Set()
      m[p].add(d)
    }
  }
  return Object.fromEntries(Object.entries(m).map(([p, s]) => [p, [...s].sort()]))
}

function policyFor(dir: string, algo?: string) {
  const lines: string[] = []
  const policy = createRuntimePolicy({
    imaMeasurementList: '/dev/null',
    ramdiskDir: join(FIX, dir),
    algo,
    progress: (m) => lines.push(m),
  })
  return { digests: policy.digests, lines }
}

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (e) {
    return e
  }
  throw new Error('expected a throw')
}

describe('--ramdisk-dir on real initramfs images', () => {
  test('lists initr* files only, symlinks followed (upstream list_initrds)', () => {
    expect(listInitramfsImages(join(FIX, 'boot')).map((p) => p.slice(FIX.length))).toEqual([
      '/boot/initramfs-6.8.0-test.img',
      '/boot/initrd.img',
      '/boot/initrd.img-6.1.0-test',
      '/boot/initrd.img-plain',
    ])
  })

  test('boot/: exactly the main-archive files with their sha256, early microcode left out', () => {
    const main = treeDigests('main')
    const v2 = treeDigests('main-v2')
    const { digests, lines } = policyFor('boot')
    expect(digests).toEqual(expected(main, v2))
    // two versions of /usr/bin/foo (zstd image and gzip image), one of everything else
    expect(digests['/usr/bin/foo']).toHaveLength(2)
    expect(digests['/dev/foo_bar']).toEqual([
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    ])
    for (const p of ['/early_cpio', '/kernel/x86/microcode/GenuineIntel.bin', '/bin', '/usr/fifo'])
      expect(digests[p]).toBeUndefined()
    expect(lines).toContain(
      `${join(FIX, 'boot/initrd.img-6.1.0-test')}: 9 files hashed (none+zstd)`,
    )
    expect(lines).toContain(
      `${join(FIX, 'boot/initramfs-6.8.0-test.img')}: 9 files hashed (none+gzip)`,
    )
    expect(lines).toContain(`${join(FIX, 'boot/initrd.img-plain')}: 9 files hashed (none)`)
  })

  test('--algo sha1 hashes with sha1', () => {
    expect(policyFor('boot', 'sha1').digests).toEqual(
      expected(treeDigests('main', 'sha1'), treeDigests('main-v2', 'sha1')),
    )
  })

  test('concatenated archives: early + gzip(main ++ extra), later archive wins per path', () => {
    const main = treeDigests('main')
    const extra = treeDigests('extra')
    delete extra['/usr/bin/foo-hardlink']
    const segments = readInitramfs(readFileSync(join(FIX, 'multi/initrd-multi.img')))
    expect(segments.map((s) => [s.compression, s.archives.length])).toEqual([
      ['none', 1],
      ['gzip', 2],
    ])
    expect(policyFor('multi').digests).toEqual(expected({ ...main, ...extra }))
  })

  test('xz and lz4 are refused clearly; a truncated gzip is a format error naming the image', () => {
    for (const [dir, comp] of [
      ['xz', 'xz'],
      ['lz4', 'lz4'],
    ] as const) {
      const e = thrown(() => policyFor(dir))
      expect(isImaError(e, 'ERR_IMA_UNSUPPORTED_COMPRESSION')).toBe(true)
      expect((e as Error).message).toContain(`initrd-${comp}.img: ${comp}-compressed initramfs`)
      expect((e as Error).message).toContain('gzip and zstd are')
    }
    const e = thrown(() => policyFor('corrupt'))
    expect(isImaError(e, 'ERR_IMA_CPIO_FORMAT')).toBe(true)
    expect((e as Error).message).toContain('initrd-truncated.img')
  })

  test('CLI: keylime policy create runtime --ramdisk-dir, progress on stderr', async () => {
    const out: string[] = []
    const err: string[] = []
    const ctx = {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      cwd: FIX,
    }
    expect(await runPolicyCreateRuntime(['-m', '/dev/null', '--ramdisk-dir', 'boot'], ctx)).toBe(0)
    expect(JSON.parse(out.join('')).digests).toEqual(
      expected(treeDigests('main'), treeDigests('main-v2')),
    )
    expect(err.join('')).toContain('files hashed (none+zstd)')
    err.length = 0
    expect(await runPolicyCreateRuntime(['-m', '/dev/null', '--ramdisk-dir', 'xz'], ctx)).toBe(1)
    expect(err.join('')).toContain('xz-compressed initramfs segment')
    // upstream's legacy keylime_create_policy has no --ramdisk-dir: a usage error, as there
    expect(await runLegacyCreatePolicy(['--ramdisk-dir', 'boot'], ctx)).toBe(2)
  })
})

/** A newc member, built by hand for hostile cases. */
function member(
  name: string,
  data: string,
  o: { magic?: string; mode?: number; check?: number; nameSize?: number } = {},
) {
  const h = (n: number) => n.toString(16).padStart(8, '0')
  const nameSize = o.nameSize ?? name.length + 1
  const head =
    (o.magic ?? '070701') +
    [1, o.mode ?? 0o100644, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameSize, o.check ?? 0]
      .map(h)
      .join('')
  const pad = (s: string) => s + '\0'.repeat((4 - (s.length % 4)) % 4)
  return pad(`${head}${name}\0`) + pad(data)
}
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'))
const trailer = member('TRAILER!!!', '')

describe('cpio reader on hostile input', () => {
  test('a well-formed archive and a crc archive with the right checksum', () => {
    const a = readCpioArchive(bytes(member('a', 'xyz') + trailer))
    expect(a.entries.map((e) => [e.name, e.kind, Buffer.from(e.data).toString()])).toEqual([
      ['a', 'file', 'xyz'],
    ])
    const sum = [...'xyz'].reduce((s, c) => s + c.charCodeAt(0), 0)
    expect(
      readCpioArchive(bytes(member('a', 'xyz', { magic: '070702', check: sum }) + trailer)).entries,
    ).toHaveLength(1)
  })

  test.each([
    [
      'bad magic mid-archive',
      member('a', 'x') + member('b', 'x', { magic: '070707' }) + trailer,
      'bad magic',
    ],
    ['not an archive', member('a', 'x', { magic: '070707' }) + trailer, 'neither NUL padding'],
    [
      'crc mismatch',
      member('a', 'xyz', { magic: '070702', check: 1 }) + trailer,
      'checksum mismatch',
    ],
    ['no trailer', member('a', 'x'), 'no TRAILER'],
    [
      'non-hex field',
      member('a', 'x').replace('00000001', '0000000g') + trailer,
      'not hexadecimal',
    ],
    ['name without NUL', member('ab', 'x', { nameSize: 2 }) + trailer, 'NUL-terminated'],
    ['zero name size', member('', 'x', { nameSize: 0 }) + trailer, 'empty name'],
    ['data past end', member('a', 'x').replace(/^(.{54})00000001/, '$1ffffffff'), 'past the end'],
    ['garbage between archives', `${member('a', 'x')}${trailer}junk`, 'neither NUL padding'],
  ])('%s → ERR_IMA_CPIO_FORMAT', (_, input, msg) => {
    const e = thrown(() => readCpioStream(bytes(input)))
    expect(isImaError(e, 'ERR_IMA_CPIO_FORMAT')).toBe(true)
    expect((e as Error).message).toContain(msg)
  })

  test('caps: name size and member count → ERR_IMA_LIMIT', () => {
    expect(
      isImaError(
        thrown(() => readCpioArchive(bytes(member('a'.repeat(5000), '') + trailer))),
        'ERR_IMA_LIMIT',
      ),
    ).toBe(true)
    const two = bytes(member('a', '') + member('b', '') + trailer)
    expect(
      isImaError(
        thrown(() => readCpioArchive(two, 0, { maxEntries: 1 })),
        'ERR_IMA_LIMIT',
      ),
    ).toBe(true)
  })

  test('a gzip bomb stops at the decompression cap', () => {
    const bomb = Bun.gzipSync(new Uint8Array(8 << 20))
    const e = thrown(() => readInitramfs(bomb, { maxDecompressedBytes: 1 << 20 }))
    expect(isImaError(e, 'ERR_IMA_LIMIT')).toBe(true)
  })

  test('runtime paths: ./ and .. normalised, parents resolved through symlinks, hard links share data', () => {
    const link = (name: string, target: string) => member(name, target, { mode: 0o120777 })
    const hl = (name: string, data: string) =>
      member(name, data).replace(/^(.{38})00000001/, '$100000002') // c_nlink = 2, same c_ino
    const a = readCpioStream(
      bytes(
        link('./bin', 'usr/bin') +
          member('./bin/sh', 'sh') +
          member('../../etc/x', 'x') +
          hl('h1', '') +
          hl('h2', 'data') +
          trailer,
      ),
    )
    const files = initramfsFiles([{ offset: 0, compression: 'none', archives: a }])
    expect(Object.fromEntries([...files].map(([p, d]) => [p, Buffer.from(d).toString()]))).toEqual({
      '/usr/bin/sh': 'sh',
      '/etc/x': 'x',
      '/h1': 'data',
      '/h2': 'data',
    })
  })

  test('fuzz: 5,000 mutated images give a value or an ImaError', () => {
    const seeds = [
      readFileSync(join(FIX, 'boot/initrd.img-plain')).subarray(0, 1600),
      readFileSync(join(FIX, 'boot/initrd.img-6.1.0-test')),
      readFileSync(join(FIX, 'multi/initrd-multi.img')),
      bytes(member('a', 'xyz', { magic: '070702', check: 363 }) + trailer),
    ].map((b) => new Uint8Array(b))
    const r = fuzzParser(
      'initramfs',
      seeds,
      (b) => initramfsFiles(readInitramfs(b, { maxDecompressedBytes: 4 << 20 })).size,
      { cases: 5000, seed: 11, isTypedError: (e) => isImaError(e) },
    )
    expect(r.failures).toEqual([])
    expect(r.accepted).toBeGreaterThan(0)
    expect(r.rejected).toBeGreaterThan(0)
  })
})
