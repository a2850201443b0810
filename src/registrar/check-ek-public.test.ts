/** `checkEkPublic`: real EKs pass; every malformed EK is a typed 400, never an OpenSSL error. */
import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { hostileEks } from '../../test/support/hostile-ek.ts'
import { isTpmError } from '../tpm/errors.ts'
import { parseTpm2bPublic } from '../tpm/public-area.ts'
import { checkEkPublic } from './check-ek-public.ts'
import { isRegistrarError } from './errors.ts'

const FIXTURES = join(import.meta.dir, '../../test/fixtures/ek')

/** The typed refusal of `tpm2b` as an EK (by the parser or by `checkEkPublic`), or 'ok'. */
function verdict(tpm2b: Uint8Array): string {
  try {
    checkEkPublic(parseTpm2bPublic(tpm2b))
    return 'ok'
  } catch (e) {
    if (!isRegistrarError(e) && !isTpmError(e)) throw e
    return e.message
  }
}

describe('checkEkPublic', () => {
  test('swtpm EKs (RSA-2048 L-1, ECC P-256 L-2, ECC P-384 H-3 with AES-256) pass', () => {
    for (const f of ['ek-rsa2048.pub', 'ek-ecc256.pub', 'ek-ecc384.pub']) {
      expect(verdict(readFileSync(join(FIXTURES, f)))).toBe('ok')
    }
  })

  for (const { name, tpm2b, reason } of hostileEks()) {
    test(`${name} → typed refusal`, () => {
      expect(verdict(tpm2b)).toContain(reason)
    })
  }
})
