import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadCertStore, verifyEkCertChain } from './cert-store.ts'
import { isEkCertError } from './ek-cert-error.ts'
import { parseEkCert } from './ek-cert.ts'
import { fuzzParser } from '../../test/support/fuzz/fuzz-parser.ts'

// Seeds: the swtpm EK certificates and the Nuvoton non-DER certificate (test/fixtures/ek/NOTES.md).
const FIX = join(import.meta.dir, '../../test/fixtures/ek')
const seeds = ['ek-rsa2048.der', 'ek-ecc256.der', 'ek-ecc384.der', 'nuvoton-npct75x.der'].map(
  (f) => new Uint8Array(readFileSync(join(FIX, f))),
)
const store = loadCertStore(join(FIX, 'store'))
// Parsed once: @peculiar/x509 decoding costs ~1 ms per certificate.
const intermediate = parseEkCert(readFileSync(join(FIX, 'intermediate.pem'), 'utf8'))
const NOW = new Date('2027-06-01T00:00:00Z')

test('fuzz: 5,000 mutated EK certificates give a value or an EkCertError', () => {
  const report = fuzzParser(
    'ek-cert',
    seeds,
    (input) => {
      const cert = parseEkCert(input, { malformedCertAction: 'ignore' })
      return verifyEkCertChain(cert, store, { now: NOW, intermediates: [intermediate] })
    },
    { cases: 5000, isTypedError: (e) => isEkCertError(e) },
  )
  expect(report.failures).toEqual([])
  expect(report.cases).toBe(5000)
  // Most mutations break the structure or the signature; a few (e.g. trailing bytes) still verify.
  expect(report.rejected).toBeGreaterThan(2500)
  expect(report.accepted).toBeGreaterThan(0)
}, 30_000)
