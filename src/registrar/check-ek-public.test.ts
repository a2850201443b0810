/** `checkEkPublic`: real EKs pass; every malformed EK is a typed 400, never an OpenSSL error. */
import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TPM_ALG_ID } from '../tpm/constants.ts'
import {
  parseTpm2bPublic,
  serializeTpm2bPublic,
  type TpmPublic,
  type TpmPublicInput,
} from '../tpm/public-area.ts'
import { checkEkPublic } from './check-ek-public.ts'
import { isRegistrarError } from './errors.ts'
import { makeSoftwareEk } from './software-agent.ts'

const FIXTURES = join(import.meta.dir, '../../test/fixtures/ek')

/** The registrar error `checkEkPublic` throws for `ek`, or 'ok'. */
function verdict(ek: TpmPublic): string {
  try {
    checkEkPublic(ek)
    return 'ok'
  } catch (e) {
    if (!isRegistrarError(e)) throw e
    return e.message
  }
}

const rebuilt = (ek: TpmPublic, change: (p: TpmPublicInput) => TpmPublicInput): TpmPublic =>
  parseTpm2bPublic(serializeTpm2bPublic(change(ek as TpmPublicInput)))

describe('checkEkPublic', () => {
  test('swtpm EKs (RSA-2048 L-1, ECC P-256 L-2, ECC P-384 H-3 with AES-256) pass', () => {
    for (const f of ['ek-rsa2048.pub', 'ek-ecc256.pub', 'ek-ecc384.pub']) {
      expect(verdict(parseTpm2bPublic(readFileSync(join(FIXTURES, f))))).toBe('ok')
    }
  })

  const rsa = makeSoftwareEk('rsa').pub
  const ecc = makeSoftwareEk('ecc').pub
  const cases: [string, TpmPublic, string][] = [
    [
      'AES-192',
      rebuilt(rsa, (p) => ({ ...p, symmetric: { ...p.symmetric, keyBits: 192 } })),
      'AES-128-CFB or AES-256-CFB',
    ],
    [
      'AES-128-CBC',
      rebuilt(ecc, (p) => ({ ...p, symmetric: { ...p.symmetric, mode: TPM_ALG_ID.CBC } })),
      'AES-128-CFB or AES-256-CFB',
    ],
    [
      'SM4',
      rebuilt(rsa, (p) => ({ ...p, symmetric: { ...p.symmetric, algorithm: TPM_ALG_ID.SM4 } })),
      'AES-128-CFB or AES-256-CFB',
    ],
    [
      'an OAEP scheme',
      rebuilt(rsa, (p) => ({
        ...p,
        scheme: { scheme: TPM_ALG_ID.OAEP, hashAlg: TPM_ALG_ID.SHA256 },
      })),
      'NULL scheme',
    ],
    [
      'an ECC kdf',
      rebuilt(ecc, (p) =>
        p.type === 'ecc'
          ? { ...p, kdf: { scheme: TPM_ALG_ID.KDF2, hashAlg: TPM_ALG_ID.SHA256 } }
          : p,
      ),
      'NULL scheme',
    ],
    [
      'an even RSA modulus',
      rebuilt(rsa, (p) => {
        if (p.type !== 'rsa') return p
        const n = new Uint8Array(p.unique.n)
        n[n.length - 1]! &= 0xfe
        return { ...p, unique: { n } }
      }),
      'RSA modulus is even',
    ],
    [
      'an ECC point off the curve',
      rebuilt(ecc, (p) => {
        if (p.type !== 'ecc') return p
        const y = new Uint8Array(p.unique.y)
        y[7]! ^= 1
        return { ...p, unique: { x: p.unique.x, y } }
      }),
      'usable public key',
    ],
  ]
  for (const [name, ek, message] of cases) {
    test(`${name} → 400 naming ek_tpm`, () => {
      const v = verdict(ek)
      expect(v).toContain('ek_tpm')
      expect(v).toContain(message)
    })
  }
})
