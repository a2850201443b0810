/**
 * A large `POST /verify/evidence` body (issue 17, finding 7): an IMA list of about `bytes` bytes,
 * made of a real guest's `ima-ng` lines (`test/fixtures/ima/vm/a`) repeated, with a runtime policy
 * that allows none of them, so the verifier parses, hashes and evaluates every line and records a
 * failure for each — the costly case (95 MB: ~600,000 lines). The quote comes from the caller's
 * TPM; its PCR 10 need not match (the whole list is walked either way).
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const FIXTURE = join(import.meta.dir, '../fixtures/ima/vm/a/ascii_runtime_measurements')

/** The TPM part of an evidence request: a quote of PCR 10 to `nonce` and the AK/EK. */
export interface EvidenceTpmData {
  quote: string
  nonce: string
  hash_alg: string
  tpm_ek: string
  tpm_ak: string
}

/** What {@link evidenceTpmData} needs of a soft TPM (`test/support/fleet/soft-tpm.ts` fits). */
export interface EvidenceTpm {
  readonly ekTpm2b: Uint8Array
  readonly akTpm2b: Uint8Array
  quote(nonce: string, pcrs: readonly number[]): { quote: string }
}

/** The TPM part of an evidence request from `tpm`: a sha256 quote of PCR 10 to `nonce`. */
export function evidenceTpmData(tpm: EvidenceTpm, nonce: string): EvidenceTpmData {
  return {
    quote: tpm.quote(nonce, [10]).quote,
    nonce,
    hash_alg: 'sha256',
    tpm_ek: Buffer.from(tpm.ekTpm2b).toString('base64'),
    tpm_ak: Buffer.from(tpm.akTpm2b).toString('base64'),
  }
}

/** An IMA list of at least `bytes` bytes (whole lines) and its line count. */
export function largeImaList(bytes: number): { text: string; lines: number } {
  const lines = readFileSync(FIXTURE, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.endsWith(' boot_aggregate'))
    .map((l) => `${l}\n`)
  const cycle = lines.join('')
  const copies = Math.max(1, Math.ceil(bytes / cycle.length))
  return { text: cycle.repeat(copies), lines: copies * lines.length }
}

/** The JSON body: `tpm` data, a list of ~`bytes` bytes, a policy that allows none of it. */
export function largeEvidenceBody(
  tpm: EvidenceTpmData,
  bytes: number,
): { body: string; lines: number } {
  const list = largeImaList(bytes)
  const policy = {
    meta: { version: 1, generator: 3 },
    release: 0,
    digests: { '/nothing': ['00'.repeat(32)] },
    excludes: [],
    keyrings: {},
    ima: { ignored_keyrings: [], log_hash_alg: 'sha1', dm_policy: null },
    'ima-buf': {},
    'verification-keys': '',
  }
  const data = {
    ...tpm,
    runtime_policy: JSON.stringify(policy),
    ima_measurement_list: list.text,
  }
  return { body: JSON.stringify({ type: 'tpm', data }), lines: list.lines }
}
