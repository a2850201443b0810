/**
 * PCR arithmetic for replaying event logs and checking data bindings:
 * `PCR_new = H_bank(PCR_old ‖ digest)` (TCG Part 1 §17.6.2 PCR extend), and the PCR16 binding of
 * the agent's NK (wire-formats §1.5): the agent resets PCR16 and extends it with H_bank(NK PEM), so
 * the quoted PCR16 must equal `H(0ⁿ ‖ H(pem_utf8))` (upstream `tpm_main.py::sim_extend`,
 * `_check_data_pcr`).
 *
 * @module
 */

import { createHash, timingSafeEqual } from 'node:crypto'
import { BoundedCache } from '../protocol/bounded-cache.ts'
import { HASH_SIZE, type HashAlg } from './constants.ts'
import { TpmError } from './errors.ts'

/**
 * Extends a PCR value: returns `H_bank(old ‖ digest)`.
 *
 * @throws {TpmError} `ERR_TPM_BAD_VALUE` if `old` or `digest` is not the bank's digest size.
 */
export function extendPcr(bank: HashAlg, old: Uint8Array, digest: Uint8Array): Uint8Array {
  const n = HASH_SIZE[bank]
  if (old.byteLength !== n || digest.byteLength !== n) {
    throw new TpmError('ERR_TPM_BAD_VALUE', `${bank} PCR extend needs ${n}-byte values`)
  }
  return createHash(bank).update(old).update(digest).digest()
}

/** Replays digests from the reset value (all zeros, or `initial`), returning the final value. */
export function replayPcr(
  bank: HashAlg,
  digests: Iterable<Uint8Array>,
  initial?: Uint8Array,
): Uint8Array {
  let v = initial ?? new Uint8Array(HASH_SIZE[bank])
  for (const d of digests) v = extendPcr(bank, v, d)
  return v
}

/** The PCR16 value an agent produces for NK `pem`: `H(0ⁿ ‖ H(pem))`. */
export function nkBindingPcr16(bank: HashAlg, pem: string | Uint8Array): Uint8Array {
  const data = typeof pem === 'string' ? Buffer.from(pem, 'utf8') : pem
  return extendPcr(bank, new Uint8Array(HASH_SIZE[bank]), createHash(bank).update(data).digest())
}

/**
 * Expected PCR16 by bank and NK PEM: a verifier checks the same few thousand keys every round.
 * Bounded in bytes as well as entries: the PEM text comes from agents.
 */
const pcr16Cache = new Map<HashAlg, BoundedCache<Uint8Array>>()

function cachedPcr16(bank: HashAlg, pem: string | Uint8Array): Uint8Array {
  if (typeof pem !== 'string') return nkBindingPcr16(bank, pem)
  let byPem = pcr16Cache.get(bank)
  if (byPem === undefined) {
    byPem = new BoundedCache({ maxEntries: 65_536, maxBytes: 16 * 1024 * 1024, sizeOf: () => 64 })
    pcr16Cache.set(bank, byPem)
  }
  let v = byPem.get(pem)
  if (v === undefined) {
    v = nkBindingPcr16(bank, pem)
    byPem.set(pem, v)
  }
  return v
}

/** Bytes held by the PCR16 cache (all banks), for tests. */
export function pcr16CacheBytes(): number {
  let n = 0
  for (const c of pcr16Cache.values()) n += c.bytes
  return n
}

/**
 * Checks the quoted PCR16 against the NK PEM the agent sent in `pubkey` (constant time). The
 * expected value is memoised per bank and PEM (bounded in entries and bytes), since it depends on
 * nothing else.
 *
 * @throws {TpmError} `ERR_QUOTE_PCR16` if PCR16 is absent from the bank or does not match.
 */
export function checkNkBinding(
  pcrs: ReadonlyMap<string, ReadonlyMap<number, Uint8Array>>,
  bank: HashAlg,
  pem: string | Uint8Array,
): void {
  const quoted = pcrs.get(bank)?.get(16)
  if (quoted === undefined)
    throw new TpmError('ERR_QUOTE_PCR16', `PCR16 of bank ${bank} not quoted`)
  const expected = cachedPcr16(bank, pem)
  if (quoted.byteLength !== expected.byteLength || !timingSafeEqual(quoted, expected)) {
    throw new TpmError('ERR_QUOTE_PCR16', 'PCR16 does not bind the agent public key')
  }
}
