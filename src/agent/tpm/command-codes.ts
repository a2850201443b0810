/**
 * TPM 2.0 command codes, capabilities and NV attributes the agent uses (TCG TPM 2.0 Library
 * Part 2 §6.5 TPM_CC, §6.12 TPM_CAP, §6.13 TPM_PT, §13.4 TPMA_NV; wire-formats §6.1).
 *
 * @module
 */

/** Part 2 §6.5 TPM_CC. */
export const TPM_CC = {
  EvictControl: 0x120,
  NV_Read: 0x14e,
  CreatePrimary: 0x131,
  PCR_Reset: 0x13d,
  Startup: 0x144,
  ActivateCredential: 0x147,
  Certify: 0x148,
  PolicySecret: 0x151,
  Create: 0x153,
  Load: 0x157,
  ContextLoad: 0x161,
  ContextSave: 0x162,
  Quote: 0x158,
  FlushContext: 0x165,
  NV_ReadPublic: 0x169,
  ReadPublic: 0x173,
  StartAuthSession: 0x176,
  GetCapability: 0x17a,
  GetRandom: 0x17b,
  PCR_Read: 0x17e,
  PCR_Extend: 0x182,
} as const

/** A command name. */
export type TpmCcName = keyof typeof TPM_CC

/** Part 2 §6.12 TPM_CAP. */
export const TPM_CAP = {
  HANDLES: 0x00000001,
  PCRS: 0x00000005,
  TPM_PROPERTIES: 0x00000006,
} as const

/** Part 2 §6.13 TPM_PT (fixed properties). */
export const TPM_PT = {
  MANUFACTURER: 0x105,
  VENDOR_STRING_1: 0x106,
  FIRMWARE_VERSION_1: 0x10b,
  NV_BUFFER_MAX: 0x12c,
} as const

/** Part 2 §13.4 TPMA_NV read-authorization bits. */
export const TPMA_NV = {
  PPREAD: 0x00010000,
  OWNERREAD: 0x00020000,
  AUTHREAD: 0x00040000,
  POLICYREAD: 0x00080000,
} as const

/** Part 2 §6.9 TPM_SU_CLEAR. */
export const TPM_SU_CLEAR = 0x0000

/** Part 2 §6.14 TPM_SE_POLICY. */
export const TPM_SE_POLICY = 0x01

/** Handle ranges (Part 2 §7.2 TPM_HT). */
export const HANDLE_RANGE = {
  persistent: 0x81000000,
  nvIndex: 0x01000000,
} as const

/** TCG EK Credential Profile NV indices (wire-formats §6.1). */
export const EK_NV = {
  rsa2048Cert: 0x01c00002,
  eccP256Cert: 0x01c0000a,
  chainFirst: 0x01c00100,
  chainLast: 0x01c001ff,
} as const
