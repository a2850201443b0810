/**
 * The TPM 2.0 key derivation functions KDFa and KDFe.
 *
 * - **KDFa** (TCG TPM 2.0 Library Part 1 §11.4.10.2): SP 800-108 counter-mode KDF with HMAC,
 *   `K(i) = HMAC_H(key, u32be(i) ‖ label ‖ 00 ‖ contextU ‖ contextV ‖ u32be(bits))`.
 * - **KDFe** (Part 1 §11.4.10.3): SP 800-56A concatenation KDF,
 *   `K(i) = H(u32be(i) ‖ Z ‖ label ‖ 00 ‖ partyUInfo ‖ partyVInfo)`.
 *
 * Both concatenate the blocks and truncate to `ceil(bits / 8)` bytes; when `bits` is not a multiple
 * of 8 the unused high bits of the first byte are cleared, as the TPM reference code does. Labels
 * are NUL-terminated: a label that already ends in a zero byte is not given a second one (Part 1
 * §11.4.10.1). Used by MakeCredential (`STORAGE`, `INTEGRITY`, `IDENTITY`, Part 1 §24).
 *
 * @module
 */

import { createHash, createHmac } from 'node:crypto'
import { type HashAlg, hashAlgName, isHashAlg } from './constants.ts'
import { TpmError } from './errors.ts'

/** A hash accepted by {@link kdfa} / {@link kdfe}: SHA-1/256/384/512 by name. */
export type KdfHash = HashAlg

/** Upper bound on requested output (64 KiB), so a hostile `bits` cannot make us loop for long. */
export const KDF_MAX_BITS = 0x10000 * 8

/**
 * Resolves a hash given as a TPM_ALG_ID or a name to its `node:crypto` name.
 *
 * @throws TpmError `ERR_TPM_UNSUPPORTED` for any other algorithm (SM3 is not available on Bun).
 */
export function kdfHashOf(hashAlg: number | KdfHash): KdfHash {
  if (typeof hashAlg === 'number') {
    const name = hashAlgName(hashAlg)
    if (name === undefined) {
      throw new TpmError(
        'ERR_TPM_UNSUPPORTED',
        `hash algorithm 0x${hashAlg.toString(16).padStart(4, '0')} is not supported by the KDF`,
      )
    }
    return name
  }
  if (!isHashAlg(hashAlg)) {
    throw new TpmError('ERR_TPM_UNSUPPORTED', `hash algorithm ${String(hashAlg)} is not supported`)
  }
  return hashAlg
}

/** Encodes a label as bytes ending in exactly one NUL (unless it already ends in one). */
function labelBytes(label: string | Uint8Array): Uint8Array {
  const raw = typeof label === 'string' ? new TextEncoder().encode(label) : label
  if (raw.byteLength > 0 && raw[raw.byteLength - 1] === 0) return raw
  const out = new Uint8Array(raw.byteLength + 1)
  out.set(raw)
  return out
}

function checkBits(bits: number): number {
  if (!Number.isSafeInteger(bits) || bits <= 0 || bits > KDF_MAX_BITS) {
    throw new TpmError('ERR_TPM_BAD_VALUE', `KDF output size must be 1..${KDF_MAX_BITS} bits`)
  }
  return (bits + 7) >>> 3
}

function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n >>> 0, false)
  return b
}

/** Truncates the concatenated blocks and clears the unused high bits (Part 1 §11.4.10.2). */
function finish(blocks: Uint8Array[], bits: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes)
  let pos = 0
  for (const b of blocks) {
    const n = Math.min(b.byteLength, bytes - pos)
    out.set(b.subarray(0, n), pos)
    pos += n
  }
  const spare = bytes * 8 - bits
  if (spare > 0) out[0] = out[0]! & (0xff >>> spare)
  return out
}

/**
 * KDFa (TCG TPM 2.0 Library Part 1 §11.4.10.2): HMAC-based counter-mode KDF.
 *
 * @param hashAlg - the HMAC hash, as TPM_ALG_ID or name (usually the object's nameAlg)
 * @param key - the HMAC key (a seed)
 * @param label - the purpose string, e.g. `"STORAGE"`; a terminating NUL is added
 * @param contextU - first context value (e.g. the object name), may be empty
 * @param contextV - second context value, may be empty
 * @param bits - the output size in bits (1…{@link KDF_MAX_BITS})
 * @returns `ceil(bits / 8)` bytes
 * @throws TpmError `ERR_TPM_UNSUPPORTED` (hash) or `ERR_TPM_BAD_VALUE` (bits)
 *
 * @example
 * ```ts
 * const symKey = kdfa('sha256', seed, 'STORAGE', akName, new Uint8Array(0), 128)
 * ```
 */
export function kdfa(
  hashAlg: number | KdfHash,
  key: Uint8Array,
  label: string | Uint8Array,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  const hash = kdfHashOf(hashAlg)
  const bytes = checkBits(bits)
  const lab = labelBytes(label)
  const size = u32be(bits)
  const blocks: Uint8Array[] = []
  for (let i = 1, got = 0; got < bytes; i++) {
    const h = createHmac(hash, key)
    h.update(u32be(i)).update(lab).update(contextU).update(contextV).update(size)
    const block = h.digest()
    blocks.push(block)
    got += block.byteLength
  }
  return finish(blocks, bits, bytes)
}

/**
 * KDFe (TCG TPM 2.0 Library Part 1 §11.4.10.3): the SP 800-56A concatenation KDF used with ECDH.
 *
 * @param hashAlg - the hash, as TPM_ALG_ID or name (the EK's nameAlg for MakeCredential)
 * @param z - the shared secret: the x-coordinate of the ECDH product, fixed width
 * @param label - the purpose string, e.g. `"IDENTITY"`; a terminating NUL is added
 * @param partyU - partyUInfo (the ephemeral public x-coordinate for MakeCredential)
 * @param partyV - partyVInfo (the EK public x-coordinate for MakeCredential)
 * @param bits - the output size in bits (1…{@link KDF_MAX_BITS})
 * @returns `ceil(bits / 8)` bytes
 * @throws TpmError `ERR_TPM_UNSUPPORTED` (hash) or `ERR_TPM_BAD_VALUE` (bits)
 */
export function kdfe(
  hashAlg: number | KdfHash,
  z: Uint8Array,
  label: string | Uint8Array,
  partyU: Uint8Array,
  partyV: Uint8Array,
  bits: number,
): Uint8Array {
  const hash = kdfHashOf(hashAlg)
  const bytes = checkBits(bits)
  const lab = labelBytes(label)
  const blocks: Uint8Array[] = []
  for (let i = 1, got = 0; got < bytes; i++) {
    const h = createHash(hash)
    h.update(u32be(i)).update(z).update(lab).update(partyU).update(partyV)
    const block = h.digest()
    blocks.push(block)
    got += block.byteLength
  }
  return finish(blocks, bits, bytes)
}
