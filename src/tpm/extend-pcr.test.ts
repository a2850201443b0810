import { describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { isTpmError } from './errors.ts'
import {
  checkNkBinding,
  extendPcr,
  nkBindingPcr16,
  pcr16CacheBytes,
  replayPcr,
} from './extend-pcr.ts'
import { computeAuthTag, verifyHmacProof } from './hmac-proof.ts'

describe('extendPcr / replayPcr', () => {
  test('extend is H(old ‖ digest) and replay chains from zero', () => {
    const d = createHash('sha256').update('a').digest()
    const once = extendPcr('sha256', new Uint8Array(32), d)
    expect(Buffer.from(once)).toEqual(
      createHash('sha256').update(new Uint8Array(32)).update(d).digest(),
    )
    expect(replayPcr('sha256', [d, d])).toEqual(extendPcr('sha256', once, d))
    expect(replayPcr('sha1', [])).toEqual(new Uint8Array(20))
  })
  test('wrong sizes are ERR_TPM_BAD_VALUE', () => {
    expect(() => extendPcr('sha256', new Uint8Array(20), new Uint8Array(32))).toThrow()
    try {
      extendPcr('sha1', new Uint8Array(20), new Uint8Array(32))
    } catch (e) {
      expect(isTpmError(e, 'ERR_TPM_BAD_VALUE')).toBe(true)
    }
  })
  test('NK binding: matches H(0ⁿ ‖ H(pem)), rejects another PEM or a missing PCR16', () => {
    const pem = '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'
    const v = nkBindingPcr16('sha384', pem)
    const pcrs = new Map([['sha384', new Map([[16, v]])]])
    expect(() => checkNkBinding(pcrs, 'sha384', pem)).not.toThrow()
    const codeOf = (fn: () => void): string => {
      try {
        fn()
        return 'ok'
      } catch (e) {
        return isTpmError(e) ? e.code : 'untyped'
      }
    }
    expect(codeOf(() => checkNkBinding(pcrs, 'sha384', pem.replace('AAAA', 'AAAB')))).toBe(
      'ERR_QUOTE_PCR16',
    )
    expect(codeOf(() => checkNkBinding(pcrs, 'sha256', pem))).toBe('ERR_QUOTE_PCR16')
    // the memoised expectation for this PEM never lets another quoted value through
    const changed = new Map([['sha384', new Map([[16, v.map((b) => b ^ 1)]])]])
    expect(codeOf(() => checkNkBinding(changed, 'sha384', pem))).toBe('ERR_QUOTE_PCR16')
    expect(() => checkNkBinding(pcrs, 'sha384', pem)).not.toThrow()
  })
})

describe('PCR16 expectation cache (issue 17, finding 4)', () => {
  test('30 distinct megabyte PEMs (a key wrapped in junk) leave it bounded in bytes', () => {
    const pcrs = new Map([['sha256', new Map([[16, new Uint8Array(32)]])]])
    for (let i = 0; i < 30; i++) {
      const pem = `${i}${'junk'.repeat(256 * 1024)}`
      expect(() => checkNkBinding(pcrs, 'sha256', pem)).toThrow('PCR16 does not bind')
    }
    expect(pcr16CacheBytes()).toBeLessThanOrEqual(16 * 1024 * 1024)
  })
})

describe('HMAC-SHA384 proofs', () => {
  // source: wire-formats.md §2.4 (registrar auth_tag, key = ASCII base64 of the credential)
  const uuid = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
  const key = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345').toString('base64')
  const expected =
    '99371ba1dbc4052a34e8eda70f0c10ec0701be7cdb3f7f99671aee66fa55624a49ccd038a7f9d8924aa3e95c14209853'
  test('computeAuthTag matches the upstream vector', () => {
    expect(computeAuthTag(key, uuid)).toBe(expected)
  })
  test('verifyHmacProof accepts it (any hex case) and rejects every single-bit change', () => {
    expect(verifyHmacProof(key, uuid, expected)).toBe(true)
    expect(verifyHmacProof(key, uuid, expected.toUpperCase())).toBe(true)
    for (let i = 0; i < expected.length; i++) {
      const c = Number.parseInt(expected[i] ?? '0', 16) ^ 1
      const bad = expected.slice(0, i) + c.toString(16) + expected.slice(i + 1)
      expect(verifyHmacProof(key, uuid, bad)).toBe(false)
    }
    expect(verifyHmacProof(key, `${uuid}x`, expected)).toBe(false)
    expect(verifyHmacProof(key, uuid, expected.slice(2))).toBe(false)
    expect(verifyHmacProof(key, uuid, `${expected.slice(2)}zz`)).toBe(false)
  })
})
