/**
 * MakeCredential throughput on one core (one Bun thread), for RSA-2048 and ECC P-256 EKs.
 *
 * Two figures per EK type:
 * - `registration`: what the registrar does per agent registration — parse the EK TPM2B_PUBLIC
 *   (including the RSA key import), MakeCredential, serialize the tpm2-tools blob;
 * - `cached EK`: MakeCredential + serialize with an already parsed EK (KeyObject cached).
 *
 * Each figure is the median of `runs` timed runs of `ops` operations, after a warm-up.
 * Usage: `bun bench/make-credential.ts [runs=7] [ops=2000]`
 *
 * @module
 */

import 'reflect-metadata'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { serializeCredentialBlob } from '../src/tpm/credential-blob.ts'
import { makeCredential } from '../src/tpm/make-credential.ts'
import { computeName, parseTpm2bPublic } from '../src/tpm/public-area.ts'

const runs = Number(process.argv[2] ?? 7)
const ops = Number(process.argv[3] ?? 2000)
const FIX = join(import.meta.dir, '../test/fixtures/ek')
const challenge = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345')

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

function measure(fn: () => void): number {
  for (let i = 0; i < Math.min(200, ops); i++) fn()
  const rates: number[] = []
  for (let r = 0; r < runs; r++) {
    const t = performance.now()
    for (let i = 0; i < ops; i++) fn()
    rates.push(ops / ((performance.now() - t) / 1000))
  }
  return median(rates)
}

console.log(`bun ${Bun.version}, ${runs} runs x ${ops} ops, median MakeCredentials/s (one thread)`)
for (const [label, file] of [
  ['RSA-2048', 'ek-rsa2048.pub'],
  ['ECC P-256', 'ek-ecc256.pub'],
] as const) {
  const ekTpm = new Uint8Array(readFileSync(join(FIX, file)))
  const ek = parseTpm2bPublic(ekTpm)
  const akName = computeName(ek)
  const full = measure(() => {
    serializeCredentialBlob(makeCredential(parseTpm2bPublic(ekTpm), akName, challenge))
  })
  const cached = measure(() => {
    serializeCredentialBlob(makeCredential(ek, akName, challenge))
  })
  console.log(
    `${label.padEnd(10)} registration ${full.toFixed(0).padStart(7)}/s   cached EK ${cached.toFixed(0).padStart(7)}/s`,
  )
}
