/**
 * Loads the swtpm/tpm2-tools quote fixtures of `test/fixtures/tpm/` (see its NOTES.md) for tests,
 * the fuzz harness and benchmarks.
 *
 * @module
 */

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { HashAlg, SignAlg } from '../../src/tpm/constants.ts'

/** Directory of the committed fixtures. */
export const QUOTE_FIXTURE_DIR = join(import.meta.dir, '..', 'fixtures', 'tpm')

/** One fixture quote with its AK. */
export interface QuoteFixture {
  /** Case name, e.g. `rsa-rsassa-sha256`. */
  name: string
  /** `rsa` or `ecc`. */
  keyAlg: 'rsa' | 'ecc'
  /** Signing hash (and PCR digest hash). */
  hashAlg: HashAlg
  /** Signature scheme. */
  signAlg: SignAlg
  /** tpm2-tools PCR list, e.g. `sha256:0,10,16`. */
  pcrList: string
  /** The nonce as ASCII. */
  nonce: string
  /** AK TPM2B_PUBLIC. */
  akPub: Uint8Array
  /** AK Name from the TPM. */
  akName: Uint8Array
  /** AK PEM from tpm2_readpublic. */
  akPem: string
  /** TPMS_ATTEST. */
  attest: Uint8Array
  /** TPMT_SIGNATURE. */
  signature: Uint8Array
  /** Serialized PCR blob. */
  pcrBlob: Uint8Array
  /** Keylime quote string. */
  quote: string
}

function bytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path))
}

/** Reads every `<name>.json` fixture with its files, sorted by name. */
export function loadQuoteFixtures(dir: string = QUOTE_FIXTURE_DIR): QuoteFixture[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const meta = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Omit<
        QuoteFixture,
        'akPub' | 'akName' | 'akPem' | 'attest' | 'signature' | 'pcrBlob' | 'quote'
      >
      const p = (ext: string): string => join(dir, `${meta.name}.${ext}`)
      return {
        ...meta,
        akPub: bytes(p('ak.pub')),
        akName: bytes(p('ak.name')),
        akPem: readFileSync(p('ak.pem'), 'utf8'),
        attest: bytes(p('msg')),
        signature: bytes(p('sig')),
        pcrBlob: bytes(p('pcr')),
        quote: readFileSync(p('quote'), 'utf8'),
      }
    })
}

/** The throwaway NK PEM whose hash the fixtures extended into PCR16. */
export function loadFixtureNkPem(dir: string = QUOTE_FIXTURE_DIR): string {
  return readFileSync(join(dir, 'nk.pem'), 'utf8')
}
