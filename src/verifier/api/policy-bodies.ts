/**
 * The bodies of `POST/PUT /allowlists/{name}` and `POST/PUT /mbpolicies/{name}` as declared
 * schemas (keylime-api.md §1.4), with upstream's messages.
 *
 * @module
 */
import { bodySchema, custom, FieldError, jsonText } from '../../http/body-schema.ts'
import { decodeBase64Field } from '../../protocol/decode-base64-field.ts'
import { parseTpmPolicy } from '../../protocol/tpm-policy.ts'

const isEmpty = (v: unknown) => v === undefined || v === null || v === ''

/** A runtime policy: base64 of its JSON text, and its signing key. */
export const RUNTIME_POLICY_BODY = bodySchema(
  {
    runtime_policy: custom((v) => {
      const text = decodeBase64Field(v, 'runtime_policy').toString('utf8')
      if (text === '') throw new FieldError('Runtime policy is required')
      return text
    }),
    /** Base64 of the signing key; decoded with the policy (`load-policy-checked.ts`). */
    runtime_policy_key: custom((v) => v),
  },
  { required: ['runtime_policy'], missing: () => 'Runtime policy is required' },
)

/**
 * The tpm_policy a runtime policy may carry, checked after the policy itself (upstream's order):
 * JSON text or inline; its own 400 (`parseTpmPolicy`) passes through.
 */
export const POLICY_TPM_BODY = bodySchema({
  tpm_policy: custom((v, key) => {
    if (isEmpty(v)) return null
    const text = jsonText().parse(v, key)
    parseTpmPolicy(text)
    return text
  }),
})

/** An MB policy's JSON, as text or inline (also of an enrolment, `enrol-body.ts`). */
export const mbPolicyJson = jsonText({ validate: true, message: 'mb_policy is not valid JSON' })

/** A measured-boot policy: JSON, as text or inline. */
export const MB_POLICY_BODY = bodySchema({
  mb_policy: custom((v, key) => {
    if (isEmpty(v)) throw new FieldError('mb_policy is required')
    return mbPolicyJson.parse(v, key)
  }),
})
