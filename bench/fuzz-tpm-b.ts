/**
 * Long fuzz runs of the part-B TPM parsers: the tpm2-tools credential blob and EK certificates
 * (with chain verification). Prints one report per parser and exits non-zero on any untyped error
 * or slow case.
 *
 * Usage: `bun bench/fuzz-tpm-b.ts [cases=50000] [seed=1]`
 *
 * @module
 */

import 'reflect-metadata'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadCertStore, verifyEkCertChain } from '../src/tpm/cert-store.ts'
import { parseCredentialBlob, serializeCredentialBlob } from '../src/tpm/credential-blob.ts'
import { isEkCertError } from '../src/tpm/ek-cert-error.ts'
import { parseEkCert } from '../src/tpm/ek-cert.ts'
import { isTpmError } from '../src/tpm/errors.ts'
import { type FuzzReport, fuzzParser } from '../test/support/fuzz/fuzz-parser.ts'
import { makeCredential } from '../src/tpm/make-credential.ts'
import { computeName, parseTpm2bPublic } from '../src/tpm/public-area.ts'

const cases = Number(process.argv[2] ?? 50_000)
const seed = Number(process.argv[3] ?? 1)
const FIX = join(import.meta.dir, '../test/fixtures/ek')
const file = (f: string): Uint8Array => new Uint8Array(readFileSync(join(FIX, f)))

const blobSeeds = ['ek-rsa2048.pub', 'ek-ecc256.pub', 'ek-ecc384.pub'].map((f) => {
  const ek = parseTpm2bPublic(file(f))
  return serializeCredentialBlob(makeCredential(ek, computeName(ek), new Uint8Array(20).fill(9)))
})
const certSeeds = ['ek-rsa2048.der', 'ek-ecc256.der', 'ek-ecc384.der', 'nuvoton-npct75x.der'].map(
  file,
)
const store = loadCertStore(join(FIX, 'store'))
const intermediate = parseEkCert(readFileSync(join(FIX, 'intermediate.pem'), 'utf8'))
const now = new Date('2027-06-01T00:00:00Z')

const reports: FuzzReport[] = [
  fuzzParser('credential-blob', blobSeeds, parseCredentialBlob, {
    cases,
    seed,
    isTypedError: (e) => isTpmError(e),
  }),
  fuzzParser(
    'ek-cert',
    certSeeds,
    (input) =>
      verifyEkCertChain(parseEkCert(input, { malformedCertAction: 'ignore' }), store, {
        now,
        intermediates: [intermediate],
      }),
    { cases, seed, isTypedError: (e) => isEkCertError(e) },
  ),
]
for (const r of reports) {
  console.log(
    `${r.name}: ${r.cases} cases, ${r.accepted} accepted, ${r.rejected} rejected, ` +
      `max ${r.maxMs.toFixed(1)} ms, ${r.failures.length} failures ${JSON.stringify(r.byCode)}`,
  )
  for (const f of r.failures) console.log(`  FAIL #${f.index} seed=${f.caseSeed}: ${f.problem}`)
}
process.exit(reports.some((r) => r.failures.length > 0) ? 1 : 0)
