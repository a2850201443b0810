/**
 * A software stand-in for an agent's TPM, for tests and the benchmark only: EK and AK key pairs
 * from `node:crypto` marshalled as TPM2B_PUBLIC with the TCG EK templates (L-1 RSA-2048, L-2 ECC
 * P-256; TCG EK Credential Profile 2.0 §B.3) and Keylime's AK attributes, and
 * TPM2_ActivateCredential done in software (`src/tpm/activate-credential.ts`). Never used by the
 * registrar itself.
 *
 * @module
 */
import { constants, generateKeyPairSync, type KeyObject, sign } from 'node:crypto'
import { activateCredential } from '../../src/tpm/activate-credential.ts'
import { ByteWriter } from '../../src/tpm/byte-writer.ts'
import {
  AK_EXPECTED_ATTRS,
  HASH_ALG_ID,
  type HashAlg,
  TPM_ALG_ID,
  TPM_ECC_CURVE,
  TPM_GENERATED_VALUE,
  TPM_ST,
} from '../../src/tpm/constants.ts'
import { parseCredentialBlob } from '../../src/tpm/credential-blob.ts'
import { computeAuthTag } from '../../src/tpm/hmac-proof.ts'
import {
  computeName,
  parseTpm2bPublic,
  serializeTpm2bPublic,
  type TpmPublic,
  type TpmPublicInput,
} from '../../src/tpm/public-area.ts'
import { ekPublicArea } from '../../src/tpm/ek-template.ts'

/** Key algorithm of a software key. */
export type SoftwareKeyType = 'rsa' | 'ecc'

/** A software key pair with its TPM2B_PUBLIC. */
export interface SoftwareKey {
  type: SoftwareKeyType
  privateKey: KeyObject
  /** TPM2B_PUBLIC bytes. */
  tpm2b: Uint8Array
  pub: TpmPublic
}

function jwkBytes(v: string | undefined): Uint8Array {
  return Uint8Array.from(Buffer.from(v ?? '', 'base64url'))
}

function makeKey(
  type: SoftwareKeyType,
  template: (jwk: { n?: string; x?: string; y?: string }) => TpmPublicInput,
): SoftwareKey {
  const { privateKey, publicKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 })
      : generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const tpm2b = serializeTpm2bPublic(template(publicKey.export({ format: 'jwk' })))
  return { type, privateKey, tpm2b, pub: parseTpm2bPublic(tpm2b) }
}

/** A software EK (TCG template L-1 RSA-2048 or L-2 ECC P-256, SHA-256, AES-128-CFB). */
export function makeSoftwareEk(type: SoftwareKeyType = 'rsa'): SoftwareKey {
  return makeKey(type, (jwk) =>
    ekPublicArea(
      type === 'rsa' ? { n: jwkBytes(jwk.n) } : { x: jwkBytes(jwk.x), y: jwkBytes(jwk.y) },
    ),
  )
}

/** A software AK (RSASSA or ECDSA with SHA-256), Keylime's attributes unless overridden. */
export function makeSoftwareAk(
  type: SoftwareKeyType = 'rsa',
  objectAttributes: number = AK_EXPECTED_ATTRS,
): SoftwareKey {
  return makeKey(type, (jwk) => {
    const common = {
      nameAlg: TPM_ALG_ID.SHA256,
      objectAttributes,
      authPolicy: new Uint8Array(0),
      symmetric: { algorithm: TPM_ALG_ID.NULL },
    }
    return type === 'rsa'
      ? {
          ...common,
          type: 'rsa',
          scheme: { scheme: TPM_ALG_ID.RSASSA, hashAlg: TPM_ALG_ID.SHA256 },
          keyBits: 2048,
          exponent: 0,
          unique: { n: jwkBytes(jwk.n) },
        }
      : {
          ...common,
          type: 'ecc',
          scheme: { scheme: TPM_ALG_ID.ECDSA, hashAlg: TPM_ALG_ID.SHA256 },
          curve: TPM_ECC_CURVE.NIST_P256,
          kdf: { scheme: TPM_ALG_ID.NULL },
          unique: { x: jwkBytes(jwk.x), y: jwkBytes(jwk.y) },
        }
  })
}

/**
 * A TPMS_ATTEST of TPM2_Certify (TCG Part 2 §10.12.8) certifying `certified` over `extraData`,
 * built by hand as a TPM marshals it (`type` overridable to make a wrong one).
 */
export function certifyAttest(
  certified: SoftwareKey,
  extraData: Uint8Array,
  type: number = TPM_ST.ATTEST_CERTIFY,
): Uint8Array {
  const name = computeName(certified.pub)
  return new ByteWriter()
    .u32(TPM_GENERATED_VALUE)
    .u16(type)
    .tpm2b(new Uint8Array(34)) // qualifiedSigner
    .tpm2b(extraData)
    .u64(123456n) // clock
    .u32(1) // resetCount
    .u32(0) // restartCount
    .u8(1) // safe
    .u64(0x2019102300000000n) // firmwareVersion
    .tpm2b(name) // TPMS_CERTIFY_INFO.name
    .tpm2b(name) // qualifiedName (not checked)
    .finish()
}

/**
 * The TPMT_SIGNATURE a TPM would make with `key` over `data`: RSASSA (or RSAPSS with `pss`) for
 * an RSA key, ECDSA for an ECC key, with `hash` (default SHA-256).
 */
export function tpmSign(
  key: SoftwareKey,
  data: Uint8Array,
  opts: { hash?: HashAlg; pss?: boolean } = {},
): Uint8Array {
  const hash = opts.hash ?? 'sha256'
  if (key.type === 'rsa') {
    const sig = opts.pss
      ? sign(hash, data, {
          key: key.privateKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
        })
      : sign(hash, data, key.privateKey)
    const alg = opts.pss ? TPM_ALG_ID.RSAPSS : TPM_ALG_ID.RSASSA
    return new ByteWriter().u16(alg).u16(HASH_ALG_ID[hash]).tpm2b(sig).finish()
  }
  const sig = sign(hash, data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
  return new ByteWriter()
    .u16(TPM_ALG_ID.ECDSA)
    .u16(HASH_ALG_ID[hash])
    .tpm2b(sig.subarray(0, 32))
    .tpm2b(sig.subarray(32))
    .finish()
}

/**
 * TPM2_ActivateCredential in software: recovers the credential from a Keylime `blob` (base64)
 * for this EK and AK name, or throws if the integrity HMAC does not match.
 */
export function activateCredentialSoftware(
  ek: SoftwareKey,
  akName: Uint8Array,
  blobB64: string,
): Uint8Array {
  const blob = parseCredentialBlob(Buffer.from(blobB64, 'base64'))
  return activateCredential(ek.pub, ek.privateKey, akName, blob)
}

/**
 * A registration body as rust-keylime sends it for these TPM2B_PUBLICs (null IAK/IDevID certs,
 * contact 127.0.0.1:9002, mTLS disabled), plus `extra`.
 */
export function registrationBody(
  akTpm2b: Uint8Array,
  ekTpm2b: Uint8Array,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    aik_tpm: Buffer.from(akTpm2b).toString('base64'),
    ek_tpm: Buffer.from(ekTpm2b).toString('base64'),
    iak_cert: null,
    idevid_cert: null,
    ip: '127.0.0.1',
    port: 9002,
    mtls_cert: 'disabled',
    ...extra,
  }
}

/**
 * A software agent: an EK and an AK, the registration body, and the `auth_tag` for a blob.
 *
 * @example
 * ```ts
 * const agent = new SoftwareAgent(makeSoftwareEk(), makeSoftwareAk())
 * const { blob } = await service.register(id, agent.body(), '2.6')
 * await service.activate(id, { auth_tag: agent.authTag(id, blob) })
 * ```
 */
export class SoftwareAgent {
  readonly ek: SoftwareKey
  readonly ak: SoftwareKey

  constructor(ek: SoftwareKey, ak: SoftwareKey) {
    this.ek = ek
    this.ak = ak
  }

  /** The AK's Name. */
  get akName(): Uint8Array {
    return computeName(this.ak.pub)
  }

  /** A registration body as rust-keylime sends it (null IAK/IDevID certs), plus `extra`. */
  body(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return registrationBody(this.ak.tpm2b, this.ek.tpm2b, extra)
  }

  /** hex HMAC-SHA384(key = base64(credential), msg = agent id), as the agent computes it. */
  authTag(agentId: string, blobB64: string): string {
    const cred = activateCredentialSoftware(this.ek, this.akName, blobB64)
    return computeAuthTag(Buffer.from(cred).toString('base64'), agentId)
  }
}
