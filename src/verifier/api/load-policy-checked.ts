/**
 * Runtime policies as the API accepts them (enrolment, `POST/PUT /allowlists/{name}`).
 *
 * @module
 */
import { BadRequest, Unauthorized } from '../../errors.ts'
import { type CompiledRuntimePolicy, isImaError, loadRuntimePolicy } from '../../ima/index.ts'
import { decodeBase64Field } from '../../protocol/decode-base64-field.ts'

/**
 * Loads a runtime policy text, its signature checked with `keyB64` (base64 of the key) when given
 * or required.
 *
 * @throws Unauthorized (401) for a missing required key or a bad signature; BadRequest (400) for
 *   a malformed policy or an unsigned one when a signature is required
 */
export function loadPolicyChecked(
  text: string,
  keyB64: unknown,
  requireSig: boolean,
): CompiledRuntimePolicy {
  let key: Buffer | undefined
  if (typeof keyB64 === 'string' && keyB64 !== '')
    key = decodeBase64Field(keyB64, 'runtime_policy_key')
  if (requireSig && key === undefined) {
    throw new Unauthorized(
      'allowlist signature verification key is required (require_allow_list_signatures)',
    )
  }
  try {
    return loadRuntimePolicy(text, { requireSignature: requireSig, key })
  } catch (err) {
    if (isImaError(err)) {
      // upstream `verify_runtime_policy`: 401 when the signature does not verify, 400 when a
      // required signature is absent ("Runtime policy is not signed!")
      if (err.code === 'ERR_IMA_POLICY_SIGNATURE' && err.status === 401)
        throw new Unauthorized(`Runtime policy signature: ${err.message}`)
      throw new BadRequest(`Runtime policy is malformatted: ${err.message}`)
    }
    throw err
  }
}
