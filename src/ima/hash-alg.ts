/**
 * Hash algorithms seen in IMA lists and policies: the kernel's `enum hash_algo` numbers used in
 * IMA signature headers (`include/uapi/linux/hash_info.h`), and a fast allocation-free
 * {@link hashInto} built on Bun's one-shot hashers. Digest sizes are `HASH_SIZE` of `src/tpm`.
 *
 * @module
 */

import { HASH_SIZE, type HashAlg, isHashAlg } from '../tpm/constants.ts'

/** Linux `enum hash_algo` (hash_info.h) → algorithm name, as used by `signature_v2_hdr.hash_algo`. */
export const LINUX_HASH_ALGO: Readonly<Record<number, string>> = {
  0: 'md4',
  1: 'md5',
  2: 'sha1',
  3: 'rmd160',
  4: 'sha256',
  5: 'sha384',
  6: 'sha512',
  7: 'sha224',
  8: 'rmd128',
  9: 'rmd256',
  10: 'rmd320',
  11: 'wp256',
  12: 'wp384',
  13: 'wp512',
  14: 'tgr128',
  15: 'tgr160',
  16: 'tgr192',
  17: 'sm3-256',
  18: 'streebog256',
  19: 'streebog512',
}

/** True when `s` is a hash algorithm usable for template hashes and PCR banks. */
export function isImaHashAlg(s: unknown): s is HashAlg {
  return typeof s === 'string' && isHashAlg(s)
}

type OneShot = { hash(data: Uint8Array, out: Uint8Array): unknown }

const ONE_SHOT: Record<HashAlg, OneShot> = {
  sha1: Bun.SHA1 as unknown as OneShot,
  sha256: Bun.SHA256 as unknown as OneShot,
  sha384: Bun.SHA384 as unknown as OneShot,
  sha512: Bun.SHA512 as unknown as OneShot,
}

/**
 * Hashes `data` with `alg` into `out` (which must be at least 64 bytes: Bun's one-shot hashers
 * require it) and returns `out.subarray(0, size)`. No allocation besides the returned view.
 */
export function hashInto(alg: HashAlg, data: Uint8Array, out: Uint8Array): Uint8Array {
  ONE_SHOT[alg].hash(data, out)
  return out.subarray(0, HASH_SIZE[alg])
}
