import { afterAll, describe, expect, test } from 'bun:test'
import { createCipheriv, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deflateRawSync } from 'node:zlib'
import { zipSync } from 'fflate'
import { buildZip } from '../../../test/support/zip-builder.ts'
import type { ZipError } from '../../protocol/read-zip.ts'
import { AgentError } from '../errors.ts'
import { installPayload } from './install-payload.ts'

const dir = mkdtempSync(join(tmpdir(), 'kl-payload-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const K = randomBytes(32)
/** The payload field as the tenant sends it: b64(IV ‖ AES-256-GCM(K) ‖ tag). */
function seal(plain: Uint8Array): string {
  const iv = randomBytes(16)
  const c = createCipheriv('aes-256-gcm', K, iv)
  const body = Buffer.concat([c.update(plain), c.final()])
  return Buffer.concat([iv, body, c.getAuthTag()]).toString('base64')
}
const opts = {
  secureDir: dir,
  encKeyname: 'derived_tci_key',
  decPayloadFile: 'decrypted_payload',
  extractZip: true,
  payloadScript: '',
}
const bytes = (s: string) => new TextEncoder().encode(s)

/** The ZipError code behind an AgentError. */
const zipCode = (err: AgentError | undefined) => (err?.cause as ZipError | undefined)?.code

/** Installs `zip`; returns the AgentError (and its time), or undefined when it installed. */
async function attempt(zip: Uint8Array): Promise<{ err: AgentError | undefined; ms: number }> {
  const sealed = seal(zip)
  const t0 = performance.now()
  try {
    await installPayload(K, sealed, opts)
    return { err: undefined, ms: performance.now() - t0 }
  } catch (e) {
    if (!(e instanceof AgentError)) throw e
    return { err: e, ms: performance.now() - t0 }
  }
}

describe('installPayload with hostile zips (finding 11)', () => {
  test('a zip holding a and a/b is refused typed, with nothing extracted', async () => {
    for (const names of [
      ['a', 'a/b'],
      ['a/b', 'a'],
    ]) {
      const { err } = await attempt(buildZip(names.map((name) => ({ name, data: bytes(name) }))))
      expect(err?.code).toBe('ERR_AGENT_PAYLOAD')
      expect(zipCode(err)).toBe('ERR_ZIP_ENTRY_NAME')
      expect(readdirSync(join(dir, 'unzipped'))).toEqual(['decrypted_payload'])
    }
  })

  test('an entry named like dec_payload_file cannot overwrite or shadow it', async () => {
    for (const name of ['decrypted_payload', 'decrypted_payload/x']) {
      const { err } = await attempt(buildZip([{ name, data: bytes('x') }]))
      expect(zipCode(err)).toBe('ERR_ZIP_ENTRY_NAME')
    }
  })

  test('a 32 MiB deflate bomb is refused before inflating', async () => {
    const zeros = new Uint8Array(32 * 1024 * 1024)
    const raw = new Uint8Array(deflateRawSync(zeros))
    const { err, ms } = await attempt(buildZip([{ name: 'z', data: zeros, raw, method: 8 }]))
    expect(zipCode(err)).toBe('ERR_ZIP_LIMIT')
    expect(ms).toBeLessThan(100)
    expect(existsSync(join(dir, 'unzipped', 'z'))).toBe(false)
  })

  test('a zip64 end record claiming 65,535 entries is refused on its count', async () => {
    const zip = buildZip([{ name: 'a', data: bytes('hello') }], { zip64: { count: 65_535 } })
    const { err, ms } = await attempt(zip)
    expect(zipCode(err)).toBe('ERR_ZIP_LIMIT')
    expect(ms).toBeLessThan(100)
  })

  test('a symlink entry is refused', async () => {
    const link = { name: 'etc', data: bytes('/etc'), externalAttr: 0o120777 * 65536 }
    const { err } = await attempt(buildZip([link, { name: 'etc/x', data: bytes('x') }]))
    expect(zipCode(err)).toBe('ERR_ZIP_UNSUPPORTED')
  })

  test('a good payload still extracts, with directories and the revocation certificate', async () => {
    const zip = zipSync({
      'RevocationNotifier-cert.crt': bytes('PEM'),
      'd/': new Uint8Array(0),
      'd/e/f.txt': bytes('deep'),
    })
    const done = await installPayload(K, seal(zip), opts)
    expect(done.files.sort()).toEqual(['RevocationNotifier-cert.crt', 'd/e/f.txt'])
    expect(done.revocationCertPem).toBe('PEM')
    expect(readFileSync(join(dir, 'unzipped', 'd/e/f.txt'), 'utf8')).toBe('deep')
  })

  test('fuzz: 3,000 mutated payload zips give AgentError or install, each in bounded time', async () => {
    const base = zipSync({
      'autorun.sh': bytes('#!/bin/sh\n'),
      action_list: bytes('local_action_x\n'),
      'd/': new Uint8Array(0),
      'd/f.txt': [bytes('hello '.repeat(100)), { level: 6 }],
      'RevocationNotifier-cert.crt': bytes('-----BEGIN CERTIFICATE-----\n'),
    })
    let seed = 99
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return (seed >>> 8) % n
    }
    // Mutate where it hurts most: the central directory and end record (last ~40%).
    let worst = 0
    for (let i = 0; i < 3000; i++) {
      const z = new Uint8Array(base)
      for (let k = 1 + rand(3); k > 0; k--) {
        const at = rand(3) === 0 ? rand(z.length) : z.length - 1 - rand(Math.floor(z.length * 0.4))
        z[at] = [0, 0xff, 0x2f, 0x2e, rand(256)][rand(5)] as number
      }
      const { ms } = await attempt(rand(20) === 0 ? z.subarray(0, rand(z.length)) : z)
      worst = Math.max(worst, ms)
    }
    expect(worst).toBeLessThan(250)
  })
})
