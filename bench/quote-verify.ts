/**
 * Quote verifications per second on one core, with the AK KeyObject cached (as the verifier does),
 * over the swtpm fixture quotes: full verifyQuote (string parse, signature, attest, nonce, PCR
 * blob, digest). Prints the median of several runs.
 *
 * Usage: bun bench/quote-verify.ts [seconds-per-run=1] [runs=7]
 *
 * @module
 */

import '../test/preload.ts'
import { loadQuoteFixtures } from '../test/support/load-quote-fixtures.ts'
import { parseTpm2bPublic, toKeyObject } from '../src/tpm/public-area.ts'
import { parseTpmtSignature } from '../src/tpm/signature.ts'
import { verifyQuote } from '../src/tpm/verify-quote.ts'
import { verify as cryptoVerify } from 'node:crypto'

function p1363(r: Uint8Array, s: Uint8Array): Uint8Array {
  const out = new Uint8Array(64)
  out.set(r, 32 - r.byteLength)
  out.set(s, 64 - s.byteLength)
  return out
}

const seconds = Number(process.argv[2] ?? 1)
const runs = Number(process.argv[3] ?? 7)
const fixtures = loadQuoteFixtures()

for (const name of ['rsa-rsassa-sha256', 'rsa-rsapss-sha256', 'ecc-ecdsa-sha256']) {
  const f = fixtures.find((x) => x.name === name)
  if (f === undefined) throw new Error(`fixture ${name} missing`)
  const params = {
    quote: f.quote,
    akPublic: toKeyObject(parseTpm2bPublic(f.akPub)),
    nonce: f.nonce,
    hashAlg: f.hashAlg,
  }
  for (let i = 0; i < 3000; i++) verifyQuote(params) // warm-up (JIT)
  const rates: number[] = []
  for (let r = 0; r < runs; r++) {
    let n = 0
    const t0 = performance.now()
    const until = t0 + seconds * 1000
    while (performance.now() < until) {
      for (let k = 0; k < 100; k++) verifyQuote(params)
      n += 100
    }
    rates.push(n / ((performance.now() - t0) / 1000))
  }
  // baseline: node:crypto.verify alone over the same attest (no parsing), same loop
  const sig = parseTpmtSignature(f.signature)
  const key = params.akPublic
  const raw =
    'sig' in sig
      ? () => cryptoVerify(f.hashAlg, f.attest, key, sig.sig)
      : () =>
          cryptoVerify(f.hashAlg, f.attest, { key, dsaEncoding: 'ieee-p1363' }, p1363(sig.r, sig.s))
  let nb = 0
  const tb = performance.now()
  while (performance.now() < tb + seconds * 1000) {
    for (let k = 0; k < 100; k++) raw()
    nb += 100
  }
  const baseline = Math.round(nb / ((performance.now() - tb) / 1000))
  rates.sort((a, b) => a - b)
  const median = rates[Math.floor(rates.length / 2)] ?? 0
  console.log(
    `${name}: median ${Math.round(median)} verifications/s (runs: ${rates.map((x) => Math.round(x)).join(', ')}; crypto.verify alone: ${baseline}/s)`,
  )
}
