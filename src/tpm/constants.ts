/**
 * TPM 2.0 constants used by keylime-ts, written as `as const` tables under the TCG TPM 2.0
 * Library Specification Part 2 ("Structures") section headers (STYLE.md rule 7), with typed
 * reverse lookups and Keylime's algorithm names (`tpm_hash_alg`, `tpm_encryption_alg`,
 * `tpm_signing_alg` in agent.conf; `hash_alg`/`enc_alg`/`sign_alg` on the wire).
 *
 * @module
 */

// ---------------------------------------------------------------------------------------------
// Part 2 §6.2 TPM_GENERATED
// ---------------------------------------------------------------------------------------------

/** `TPM_GENERATED_VALUE`: the magic at the start of every TPMS_ATTEST ("\xffTCG"). */
export const TPM_GENERATED_VALUE = 0xff544347

// ---------------------------------------------------------------------------------------------
// Part 2 §6.3 TPM_ALG_ID (subset: what Keylime and tpm2-tools use)
// ---------------------------------------------------------------------------------------------

/** Algorithm identifiers. */
export const TPM_ALG_ID = {
  ERROR: 0x0000,
  RSA: 0x0001,
  TDES: 0x0003,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  SHA3_256: 0x0027,
  SHA3_384: 0x0028,
  SHA3_512: 0x0029,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const

/** A known TPM_ALG_ID name. */
export type TpmAlgName = keyof typeof TPM_ALG_ID
/** A known TPM_ALG_ID value. */
export type TpmAlgId = (typeof TPM_ALG_ID)[TpmAlgName]

// ---------------------------------------------------------------------------------------------
// Part 2 §6.4 TPM_ECC_CURVE
// ---------------------------------------------------------------------------------------------

/** ECC curve identifiers. */
export const TPM_ECC_CURVE = {
  NONE: 0x0000,
  NIST_P192: 0x0001,
  NIST_P224: 0x0002,
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
  BN_P256: 0x0010,
  BN_P638: 0x0011,
  SM2_P256: 0x0020,
} as const

/** A known TPM_ECC_CURVE name. */
export type TpmEccCurveName = keyof typeof TPM_ECC_CURVE
/** A known TPM_ECC_CURVE value. */
export type TpmEccCurve = (typeof TPM_ECC_CURVE)[TpmEccCurveName]

/** Curves `node:crypto` can verify with: TPM curve ID → JWK `crv` and coordinate size in bytes. */
export const ECC_CURVE_INFO = {
  [TPM_ECC_CURVE.NIST_P256]: { crv: 'P-256', size: 32, keylime: 'ecc256' },
  [TPM_ECC_CURVE.NIST_P384]: { crv: 'P-384', size: 48, keylime: 'ecc384' },
  [TPM_ECC_CURVE.NIST_P521]: { crv: 'P-521', size: 66, keylime: 'ecc521' },
} as const

// ---------------------------------------------------------------------------------------------
// Part 2 §6.6 TPM_RC (response codes; the basics an agent has to branch on)
// ---------------------------------------------------------------------------------------------

/** Response codes. Format-1 codes have bit 0x080 set (see {@link isFormatOneRc}). */
export const TPM_RC = {
  SUCCESS: 0x000,
  BAD_TAG: 0x01e,
  INITIALIZE: 0x100,
  FAILURE: 0x101,
  SEQUENCE: 0x103,
  DISABLED: 0x120,
  EXCLUSIVE: 0x121,
  AUTH_TYPE: 0x124,
  AUTH_MISSING: 0x125,
  POLICY: 0x126,
  PCR: 0x127,
  PCR_CHANGED: 0x128,
  UPGRADE: 0x12d,
  REBOOT: 0x130,
  COMMAND_SIZE: 0x142,
  COMMAND_CODE: 0x143,
  AUTHSIZE: 0x144,
  AUTH_CONTEXT: 0x145,
  NV_RANGE: 0x146,
  NV_SIZE: 0x147,
  NV_LOCKED: 0x148,
  NV_AUTHORIZATION: 0x149,
  NV_UNINITIALIZED: 0x14a,
  NV_SPACE: 0x14b,
  NV_DEFINED: 0x14c,
  // Format-1 base values (add 0x080 | n<<8 for parameter/handle/session numbering)
  ASYMMETRIC: 0x081,
  ATTRIBUTES: 0x082,
  HASH: 0x083,
  VALUE: 0x084,
  HIERARCHY: 0x085,
  KEY_SIZE: 0x087,
  MGF: 0x088,
  MODE: 0x089,
  TYPE: 0x08a,
  HANDLE: 0x08b,
  KDF: 0x08c,
  RANGE: 0x08d,
  AUTH_FAIL: 0x08e,
  NONCE: 0x08f,
  PP: 0x090,
  SCHEME: 0x092,
  SIZE: 0x095,
  SYMMETRIC: 0x096,
  TAG: 0x097,
  SELECTOR: 0x098,
  INSUFFICIENT: 0x09a,
  SIGNATURE: 0x09b,
  KEY: 0x09c,
  POLICY_FAIL: 0x09d,
  INTEGRITY: 0x09f,
  TICKET: 0x0a0,
  BAD_AUTH: 0x0a2,
  EXPIRED: 0x0a3,
  POLICY_CC: 0x0a4,
  BINDING: 0x0a5,
  CURVE: 0x0a6,
  ECC_POINT: 0x0a7,
  // Warnings (0x900 range)
  CONTEXT_GAP: 0x901,
  OBJECT_MEMORY: 0x902,
  SESSION_MEMORY: 0x903,
  MEMORY: 0x904,
  SESSION_HANDLES: 0x905,
  OBJECT_HANDLES: 0x906,
  LOCALITY: 0x907,
  YIELDED: 0x908,
  CANCELED: 0x909,
  TESTING: 0x90a,
  REFERENCE_H0: 0x910,
  NV_RATE: 0x920,
  LOCKOUT: 0x921,
  RETRY: 0x922,
  NV_UNAVAILABLE: 0x923,
} as const

/** A known TPM_RC name. */
export type TpmRcName = keyof typeof TPM_RC

/** True for format-1 response codes (bit 7 set), whose low 6 bits plus 0x080 name the error. */
export function isFormatOneRc(rc: number): boolean {
  return (rc & 0x080) !== 0
}

/** Transient warnings after which a command may simply be retried (rust-keylime does so). */
export const TPM_RC_RETRYABLE: ReadonlySet<number> = new Set([
  TPM_RC.YIELDED,
  TPM_RC.TESTING,
  TPM_RC.RETRY,
])

// ---------------------------------------------------------------------------------------------
// Part 2 §6.9 TPM_ST (structure tags)
// ---------------------------------------------------------------------------------------------

/** Structure tags. */
export const TPM_ST = {
  RSP_COMMAND: 0x00c4,
  NULL: 0x8000,
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  ATTEST_NV_DIGEST: 0x801c,
  CREATION: 0x8021,
  VERIFIED: 0x8022,
  AUTH_SECRET: 0x8023,
  HASHCHECK: 0x8024,
  AUTH_SIGNED: 0x8025,
  FU_MANIFEST: 0x8029,
} as const

/** A known TPM_ST name. */
export type TpmStName = keyof typeof TPM_ST
/** A known TPM_ST value. */
export type TpmSt = (typeof TPM_ST)[TpmStName]

// ---------------------------------------------------------------------------------------------
// Part 2 §7.4 TPM_RH (permanent handles)
// ---------------------------------------------------------------------------------------------

/** Permanent handles. */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  PW: 0x40000009,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const

// ---------------------------------------------------------------------------------------------
// Part 2 §8.3 TPMA_OBJECT (object attributes)
// ---------------------------------------------------------------------------------------------

/** Object attribute bits. */
export const TPMA_OBJECT = {
  fixedTPM: 0x00000002,
  stClear: 0x00000004,
  fixedParent: 0x00000010,
  sensitiveDataOrigin: 0x00000020,
  userWithAuth: 0x00000040,
  adminWithPolicy: 0x00000080,
  noDA: 0x00000400,
  encryptedDuplication: 0x00000800,
  restricted: 0x00010000,
  decrypt: 0x00020000,
  sign: 0x00040000,
  x509sign: 0x00080000,
} as const

/** A TPMA_OBJECT flag name. */
export type TpmaObjectFlag = keyof typeof TPMA_OBJECT

/** Bits that TCG Part 2 §8.3.2 marks reserved (must be clear). */
export const TPMA_OBJECT_RESERVED = 0xfff0f309

/** The attributes of a Keylime AK (tss-esapi `create_ak`): 0x00050072. */
export const AK_EXPECTED_ATTRS =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.userWithAuth |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.sign

// ---------------------------------------------------------------------------------------------
// Part 2 §10.5 TPMS_PCR_SELECTION limits
// ---------------------------------------------------------------------------------------------

/** PCRs in a bank on a PC-client TPM. */
export const PCR_COUNT = 24
/** `PCR_SELECT_MAX`: bytes of pcrSelect a TPM accepts (tpm2-tools' `TPM2_PCR_SELECT_MAX`, 4). */
export const PCR_SELECT_MAX = 4
/** `HASH_COUNT`: the maximum number of banks in a TPML_PCR_SELECTION (tpm2-tools: 16). */
export const HASH_COUNT = 16

// ---------------------------------------------------------------------------------------------
// Hash algorithms: sizes and Keylime / node:crypto names
// ---------------------------------------------------------------------------------------------

/** Keylime's hash algorithm names (`tpm_hash_alg`, quote `hash_alg`) verifiable with node:crypto. */
export type HashAlg = 'sha1' | 'sha256' | 'sha384' | 'sha512'

/** TPM_ALG_ID of each Keylime hash name. */
export const HASH_ALG_ID = {
  sha1: TPM_ALG_ID.SHA1,
  sha256: TPM_ALG_ID.SHA256,
  sha384: TPM_ALG_ID.SHA384,
  sha512: TPM_ALG_ID.SHA512,
} as const satisfies Record<HashAlg, number>

/** Digest size in bytes of each Keylime hash name. */
export const HASH_SIZE = {
  sha1: 20,
  sha256: 32,
  sha384: 48,
  sha512: 64,
} as const satisfies Record<HashAlg, number>

/** Digest sizes by TPM_ALG_ID, including SM3 (which cannot be computed here). */
export const DIGEST_SIZE_BY_ALG: Readonly<Record<number, number>> = {
  [TPM_ALG_ID.SHA1]: 20,
  [TPM_ALG_ID.SHA256]: 32,
  [TPM_ALG_ID.SHA384]: 48,
  [TPM_ALG_ID.SHA512]: 64,
  [TPM_ALG_ID.SM3_256]: 32,
  [TPM_ALG_ID.SHA3_256]: 32,
  [TPM_ALG_ID.SHA3_384]: 48,
  [TPM_ALG_ID.SHA3_512]: 64,
}

/** Keylime's asymmetric key algorithm names (`tpm_encryption_alg`, quote `enc_alg` < API 2.5). */
export type EncAlg = 'rsa' | 'ecc'

/** Keylime's signature scheme names (`tpm_signing_alg`, quote `sign_alg`). */
export type SignAlg = 'rsassa' | 'rsapss' | 'ecdsa' | 'ecschnorr'

/** TPM_ALG_ID of each Keylime key algorithm name. */
export const ENC_ALG_ID = {
  rsa: TPM_ALG_ID.RSA,
  ecc: TPM_ALG_ID.ECC,
} as const satisfies Record<EncAlg, number>

/** TPM_ALG_ID of each Keylime signature scheme name. */
export const SIGN_ALG_ID = {
  rsassa: TPM_ALG_ID.RSASSA,
  rsapss: TPM_ALG_ID.RSAPSS,
  ecdsa: TPM_ALG_ID.ECDSA,
  ecschnorr: TPM_ALG_ID.ECSCHNORR,
} as const satisfies Record<SignAlg, number>

// ---------------------------------------------------------------------------------------------
// Typed reverse lookups
// ---------------------------------------------------------------------------------------------

function invert<T extends Record<string, number>>(table: T): ReadonlyMap<number, keyof T> {
  const m = new Map<number, keyof T>()
  for (const [k, v] of Object.entries(table)) if (!m.has(v)) m.set(v, k as keyof T)
  return m
}

const ALG_NAMES = invert(TPM_ALG_ID)
const CURVE_NAMES = invert(TPM_ECC_CURVE)
const ST_NAMES = invert(TPM_ST)
const RC_NAMES = invert(TPM_RC)
const HASH_NAMES = invert(HASH_ALG_ID)
const SIGN_NAMES = invert(SIGN_ALG_ID)

/** TPM_ALG_ID value → name (`undefined` if unknown). */
export function algName(id: number): TpmAlgName | undefined {
  return ALG_NAMES.get(id)
}

/** TPM_ECC_CURVE value → name (`undefined` if unknown). */
export function curveName(id: number): TpmEccCurveName | undefined {
  return CURVE_NAMES.get(id)
}

/** TPM_ST value → name (`undefined` if unknown). */
export function stName(tag: number): TpmStName | undefined {
  return ST_NAMES.get(tag)
}

/** TPM_RC → name, for format-0 codes and format-1 codes with their numbering bits stripped. */
export function rcName(rc: number): TpmRcName | undefined {
  const base = isFormatOneRc(rc) ? (rc & 0x3f) | 0x080 : rc
  return RC_NAMES.get(base)
}

/** TPM_ALG_ID of a hash → Keylime name (`undefined` for SM3 and anything node:crypto lacks). */
export function hashAlgName(id: number): HashAlg | undefined {
  return HASH_NAMES.get(id)
}

/** TPM_ALG_ID of a signature scheme → Keylime name. */
export function signAlgName(id: number): SignAlg | undefined {
  return SIGN_NAMES.get(id)
}

/** True if `s` is one of Keylime's hash algorithm names supported here. */
export function isHashAlg(s: string): s is HashAlg {
  return Object.hasOwn(HASH_ALG_ID, s)
}
