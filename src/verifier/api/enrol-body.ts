/**
 * The body of `POST /agents/{id}` (keylime-api.md §1.3) as a declared schema: the eleven keys
 * upstream requires, the optional ones, and each value's shape. What depends on stored state (the
 * policy names, the verifier's own defaults) is in `enrol.ts`.
 *
 * Refusals read `Exception error: …`, as upstream's handler words them; a missing key is
 * `Exception error: '<key>'` (Python's `KeyError` text).
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { BadRequest } from '../../errors.ts'
import {
  type BodyOf,
  bodySchema,
  custom,
  type Field,
  FieldError,
  int,
  jsonText,
  optional,
  string,
  stringList,
} from '../../http/body-schema.ts'
import { decodeBase64Field } from '../../protocol/decode-base64-field.ts'
import { readPemBlock } from '../../protocol/read-pem-block.ts'
import { parseTpmPolicy } from '../../protocol/tpm-policy.ts'
import { parseTpm2bPublic, toKeyObject } from '../../tpm/public-area.ts'
import { mbPolicyJson } from './policy-bodies.ts'

/** Enrolment PEM inputs: one block each, bounded (a 64 KiB DER certificate, an 8192-bit key). */
const MAX_CERT_PEM = 96 * 1024
const MAX_PRIVATE_KEY_PEM = 16 * 1024
const PRIVATE_KEY_LABELS = ['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']

/** Runs `check`, turning whatever it throws into a refusal worded `message`. */
function refuseOnThrow(message: string | ((e: Error) => string), check: () => void): void {
  try {
    check()
  } catch (e) {
    throw new FieldError(typeof message === 'string' ? message : message(e as Error))
  }
}

/** `tpm_policy`: JSON text or inline, a valid tpm_policy (upstream `tpm_policy` rules). */
const tpmPolicy = custom((v) => {
  const text = typeof v === 'string' ? v : JSON.stringify(v)
  refuseOnThrow(
    (e) => e.message,
    () => parseTpmPolicy(text),
  )
  return text
})

/** `v`: base64 of a 16- or 32-byte key, normalised. */
const vKey = custom((v) => {
  const raw = decodeBase64Field(v, 'v')
  if (raw.length !== 16 && raw.length !== 32) throw new FieldError('v must be a 16- or 32-byte key')
  return raw.toString('base64')
})

/** `mtls_cert`: one PEM certificate, or `disabled`. */
const mtlsCert = custom((v) => {
  if (typeof v !== 'string') throw new FieldError('mtls_cert must be a PEM string')
  if (v !== 'disabled') {
    refuseOnThrow('mtls_cert is not one PEM certificate', () => {
      new X509Certificate(readPemBlock(v, ['CERTIFICATE'], MAX_CERT_PEM).der)
    })
  }
  return v
})

/** `ak_tpm`: base64 of a TPM2B_PUBLIC the verifier can use as a key. */
const akTpm = custom((v) => {
  const raw = decodeBase64Field(v, 'ak_tpm')
  refuseOnThrow(
    (e) => `ak_tpm is not a TPM2B_PUBLIC key: ${e.message}`,
    () => toKeyObject(parseTpm2bPublic(raw)),
  )
  return raw
})

/** `revocation_key`: empty, or one PEM private key. */
const revocationKey = custom((v, key) => {
  const pem = string().parse(v, key)
  if (pem !== '') {
    refuseOnThrow('revocation_key is not one PEM private key', () => {
      readPemBlock(pem, PRIVATE_KEY_LABELS, MAX_PRIVATE_KEY_PEM)
      createPrivateKey(pem)
    })
  }
  return pem
})

/** `mb_policy`: absent, null or empty → none; else JSON text or inline. */
const mbPolicy = custom((v, key) =>
  v === undefined || v === null || v === '' ? null : mbPolicyJson.parse(v, key),
)

const algorithms = stringList({
  maxItems: 64,
  maxLength: 64,
  message: (k) => `${k} must be a list of algorithm names`,
})

/** Upstream's wording: Python's `KeyError` text for a missing key, `Exception error:` for a value. */
const ENROL_RULES = {
  missing: (k: string) => `Exception error: '${k}'`,
  invalid: (m: string) => `Exception error: ${m}`,
}

/**
 * The agent part of the enrolment body, in upstream's check order, and the keys upstream requires
 * (`cloud_verifier_tornado.py`, checked before anything else). With `requireMtls`
 * (`enable_agent_mtls`, pull mode) an agent mTLS certificate is required.
 */
export function enrolBodySchema(requireMtls: boolean, push = false) {
  // a push agent is never contacted: its address is optional (upstream stores None)
  const contact = <T>(f: Field<T>) => (push ? optional(f, null) : f) as Field<T | null>
  return bodySchema(
    {
      tpm_policy: tpmPolicy,
      v: optional(vKey, null),
      cloudagent_ip: contact(
        string({
          nonEmpty: true,
          max: 255,
          reject: /[\s/]/,
          message: 'cloudagent_ip is required',
        }),
      ),
      cloudagent_port: contact(
        int({
          min: 1,
          max: 65535,
          fromString: true,
          message: 'cloudagent_port must be a port number',
        }),
      ),
      supported_version: optional(string(), ''),
      mtls_cert: custom((v, key) => {
        const cert = optional(mtlsCert, null).parse(v, key)
        if (requireMtls && (cert === null || cert === 'disabled'))
          throw new BadRequest('mTLS certificate for agent is required!')
        return cert
      }),
      ak_tpm: akTpm,
      revocation_key: optional(revocationKey, ''),
      metadata: optional(jsonText(), '{}'),
      ima_sign_verification_keys: optional(string(), ''),
      accept_tpm_hash_algs: algorithms,
      accept_tpm_encryption_algs: algorithms,
      accept_tpm_signing_algs: algorithms,
      /** Any value is taken as text (upstream stores what the tenant sent). */
      verifier_ip: custom((v) => (v === undefined ? undefined : String(v))),
      /** A non-integer falls back to the verifier's own port. */
      verifier_port: custom((v) => {
        const n = v === undefined ? undefined : Number(v)
        return Number.isInteger(n) ? n : undefined
      }),
      runtime_policy_name: optional(string(), ''),
      runtime_policy: custom((v) => decodeBase64Field(v ?? '', 'runtime_policy').toString('utf8')),
      /** Base64 of the policy signing key; decoded only when a policy is loaded. */
      runtime_policy_key: custom((v) => v),
    },
    {
      ...ENROL_RULES,
      required: [
        'tpm_policy',
        'runtime_policy',
        'mb_policy',
        'mb_policy_name',
        'ima_sign_verification_keys',
        'metadata',
        'revocation_key',
        'accept_tpm_hash_algs',
        'accept_tpm_encryption_algs',
        'accept_tpm_signing_algs',
        'ak_tpm',
      ],
    },
  )
}

/** The schema {@link enrolBodySchema} makes. */
export type EnrolBodySchema = ReturnType<typeof enrolBodySchema>

/** A checked enrolment body (without its measured-boot part). */
export type EnrolBody = BodyOf<EnrolBodySchema>

/**
 * The measured-boot part of the enrolment body, which upstream checks after the runtime policy
 * (so a runtime policy refusal comes first). Its keys are required by {@link enrolBodySchema}.
 */
export const ENROL_MB_BODY = bodySchema(
  { mb_policy_name: optional(string(), ''), mb_policy: mbPolicy },
  ENROL_RULES,
)

/** The checked measured-boot part of an enrolment body. */
export type EnrolMbBody = BodyOf<typeof ENROL_MB_BODY>
