/**
 * The TPM as the agent's request handlers see it, independent of where the TPM is: the real
 * TPM through a transport ({@link openHardwareAgentTpm}) or the fleet simulator's SoftTpm. The
 * API handlers, the registrar client and the key exchange use only this interface.
 *
 * @module
 */

import type { EncAlg, HashAlg, SignAlg } from '../tpm/constants.ts'

/** The agent's TPM identity and the TPM operations Keylime needs. */
export interface AgentTpm {
  /** `tpm_hash_alg`: AK nameAlg and scheme hash, and the quoted bank. */
  readonly hashAlg: HashAlg
  /** `tpm_encryption_alg`: the EK (and AK) key algorithm. */
  readonly encAlg: EncAlg
  /** `tpm_signing_alg`: the AK's signature scheme. */
  readonly signAlg: SignAlg
  /** EK as TPM2B_PUBLIC (`ek_tpm` before base64). */
  readonly ekTpm2b: Uint8Array
  /** AK as TPM2B_PUBLIC (`aik_tpm` before base64). */
  readonly akTpm2b: Uint8Array
  /** EK certificate followed by the NV chain, PEM (`ekcert`), or undefined when the TPM has none. */
  readonly ekCertPem: string | undefined
  /** The NK (payload key) as the agent serves it: SPKI PEM. */
  readonly nkPem: string
  /** The AK's handle (reported by `agent/info`). */
  readonly akHandle: number
  /**
   * Binds the NK to PCR16 (PCR_Reset(16), PCR_Extend(16, H(nkPem))), then TPM2_Quote over `pcrs`
   * (PCR16 is always added) in bank {@link hashAlg} with the nonce's UTF-8 bytes as qualifying
   * data. Returns the Keylime quote string `r<attest>:<sig>:<pcrblob>` (wire-formats §1.4–§1.5).
   */
  quote(nonce: string, pcrs: readonly number[]): Promise<string>
  /** TPM2_ActivateCredential on the registrar's blob (tpm2-tools makecredential format). */
  activateCredential(blob: Uint8Array): Promise<Uint8Array>
  /** RSA-OAEP (SHA-1) decryption with the NK: how U and V arrive (wire-formats §4). */
  decryptWithNk(ciphertext: Uint8Array): Uint8Array
}
