/**
 * The tpm2-tools MakeCredential output file, which the Keylime registrar sends to the agent as
 * `results.blob` (base64) in its answer to `POST /v2.x/agents/{id}` (wire-formats §2.3):
 *
 * ```
 * u32 0xBADCC0DE | u32 1 | TPM2B_ID_OBJECT | TPM2B_ENCRYPTED_SECRET      (all big-endian)
 * ```
 *
 * TPM2B_ID_OBJECT's buffer is a TPMS_ID_OBJECT (TPM 2.0 Library Part 2 §12.4.3):
 * `TPM2B_DIGEST integrityHMAC ‖ encIdentity` (encIdentity fills the rest). TPM2B_ENCRYPTED_SECRET
 * holds an RSA-OAEP ciphertext (RSA EKs) or a marshalled TPMS_ECC_POINT (ECC EKs). Upstream writers:
 * tpm2-tools `tpm2_makecredential` (`files_save_*`), `keylime/tpm/tpm_util.py::makecredential`;
 * reader: rust-keylime `tpm.rs::parse_cred_and_secret`.
 *
 * @module
 */

import { ByteReader } from './byte-reader.ts'
import { ByteWriter } from './byte-writer.ts'
import { TpmError } from './errors.ts'

/** The file magic tpm2-tools writes before credential files. */
export const CREDENTIAL_BLOB_MAGIC = 0xbadcc0de
/** The only format version tpm2-tools writes. */
export const CREDENTIAL_BLOB_VERSION = 1

/** Largest integrity HMAC (SHA-512 digest). */
const MAX_DIGEST = 64
/** Largest TPMU_ENCRYPTED_SECRET: an RSA-4096 ciphertext (MAX_RSA_KEY_BYTES = 512). */
export const MAX_ENCRYPTED_SECRET = 512
/** Largest TPMS_ID_OBJECT: HMAC TPM2B + encrypted TPM2B of at most one digest (2 + 64 + 2 + 64). */
export const MAX_ID_OBJECT = 2 + MAX_DIGEST + 2 + MAX_DIGEST

/**
 * The two outputs of TPM2_MakeCredential, as the *buffers* of their TPM2Bs (no size prefix).
 */
export interface CredentialBlob {
  /** TPM2B_ID_OBJECT buffer: a TPMS_ID_OBJECT (`u16 n | integrityHMAC | encIdentity`). */
  credentialBlob: Uint8Array
  /** TPM2B_ENCRYPTED_SECRET buffer: OAEP ciphertext or TPMS_ECC_POINT. */
  encryptedSecret: Uint8Array
}

/** A TPMS_ID_OBJECT split into its fields (Part 2 §12.4.3). */
export interface IdObject {
  /** HMAC over `encIdentity ‖ name`, one digest of the EK's nameAlg. */
  integrityHmac: Uint8Array
  /** AES-CFB encrypted TPM2B_DIGEST holding the credential. */
  encIdentity: Uint8Array
}

/**
 * Splits a TPMS_ID_OBJECT (the buffer of a TPM2B_ID_OBJECT) into HMAC and encrypted identity.
 *
 * @throws TpmError `ERR_TPM_TRUNCATED` or `ERR_TPM_BAD_VALUE` on malformed input
 */
export function parseIdObject(buffer: Uint8Array): IdObject {
  const r = new ByteReader(buffer)
  const integrityHmac = r.tpm2b()
  if (![20, 32, 48, 64].includes(integrityHmac.byteLength)) {
    throw new TpmError(
      'ERR_TPM_BAD_VALUE',
      `integrityHMAC must be one digest (20/32/48/64 bytes), got ${integrityHmac.byteLength}`,
    )
  }
  const encIdentity = r.rest()
  // encIdentity is an encrypted TPM2B_DIGEST: at least its u16 size, at most size + one digest.
  if (encIdentity.byteLength < 2 || encIdentity.byteLength > 2 + MAX_DIGEST) {
    throw new TpmError(
      'ERR_TPM_BAD_VALUE',
      `encIdentity must be 2..${2 + MAX_DIGEST} bytes, got ${encIdentity.byteLength}`,
    )
  }
  return { integrityHmac, encIdentity }
}

/**
 * Parses the tpm2-tools credential file (`BADCC0DE 00000001 | TPM2B_ID_OBJECT |
 * TPM2B_ENCRYPTED_SECRET`). Checks magic, version, sizes, the inner TPMS_ID_OBJECT layout, and that
 * nothing follows.
 *
 * @param bytes - the decoded file (for the registrar's `blob`: base64-decoded)
 * @returns the two TPM2B buffers (copies, independent of `bytes`)
 * @throws TpmError `ERR_TPM_BAD_VALUE`, `ERR_TPM_TRUNCATED` or `ERR_TPM_TRAILING_BYTES`
 *
 * @example
 * ```ts
 * const { credentialBlob, encryptedSecret } = parseCredentialBlob(Buffer.from(blobB64, 'base64'))
 * ```
 */
export function parseCredentialBlob(bytes: Uint8Array): CredentialBlob {
  const r = new ByteReader(bytes)
  const magic = r.u32()
  if (magic !== CREDENTIAL_BLOB_MAGIC) {
    throw new TpmError('ERR_TPM_BAD_VALUE', `credential blob magic is 0x${magic.toString(16)}`)
  }
  const version = r.u32()
  if (version !== CREDENTIAL_BLOB_VERSION) {
    throw new TpmError('ERR_TPM_BAD_VALUE', `credential blob version ${version} is not 1`)
  }
  const credentialBlob = r.tpm2b()
  if (credentialBlob.byteLength > MAX_ID_OBJECT) {
    throw new TpmError(
      'ERR_TPM_BAD_VALUE',
      `TPM2B_ID_OBJECT too large: ${credentialBlob.byteLength}`,
    )
  }
  parseIdObject(credentialBlob)
  const encryptedSecret = r.tpm2b()
  if (encryptedSecret.byteLength === 0 || encryptedSecret.byteLength > MAX_ENCRYPTED_SECRET) {
    throw new TpmError(
      'ERR_TPM_BAD_VALUE',
      `TPM2B_ENCRYPTED_SECRET must be 1..${MAX_ENCRYPTED_SECRET} bytes, got ${encryptedSecret.byteLength}`,
    )
  }
  r.end()
  return { credentialBlob: credentialBlob.slice(), encryptedSecret: encryptedSecret.slice() }
}

/**
 * Serializes MakeCredential outputs in the tpm2-tools file format, byte-identical to
 * `tpm2_makecredential -o` and to upstream Keylime's `makecredential()`.
 *
 * @throws TpmError `ERR_TPM_BAD_VALUE` if a buffer does not fit its TPM2B
 */
export function serializeCredentialBlob(blob: CredentialBlob): Uint8Array {
  if (blob.credentialBlob.byteLength > MAX_ID_OBJECT) {
    throw new TpmError('ERR_TPM_BAD_VALUE', 'TPM2B_ID_OBJECT too large')
  }
  if (blob.encryptedSecret.byteLength > MAX_ENCRYPTED_SECRET) {
    throw new TpmError('ERR_TPM_BAD_VALUE', 'TPM2B_ENCRYPTED_SECRET too large')
  }
  return new ByteWriter()
    .u32(CREDENTIAL_BLOB_MAGIC)
    .u32(CREDENTIAL_BLOB_VERSION)
    .tpm2b(blob.credentialBlob)
    .tpm2b(blob.encryptedSecret)
    .finish()
}
