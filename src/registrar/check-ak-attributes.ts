/**
 * The AK attribute check upstream dropped and we keep (wire-formats §2.5, §10 item 1): Keylime's
 * AK must be a restricted signing key that lives and was generated in the TPM. Without it a
 * software key could be registered as the AK and sign arbitrary "quotes".
 *
 * Required (TCG Part 2 §8.3 TPMA_OBJECT): fixedTPM, fixedParent, sensitiveDataOrigin, restricted,
 * sign; `decrypt` must be clear. `userWithAuth` (set by tss-esapi and tpm2_createak) is allowed
 * but not required.
 *
 * @module
 */
import { TPMA_OBJECT, type TpmaObjectFlag } from '../tpm/constants.ts'
import type { TpmPublic } from '../tpm/public-area.ts'
import { invalidData } from './errors.ts'

/** Attributes an AK must have. */
export const AK_REQUIRED_ATTRIBUTES: readonly TpmaObjectFlag[] = [
  'fixedTPM',
  'fixedParent',
  'sensitiveDataOrigin',
  'restricted',
  'sign',
]

/** Attributes an AK must not have. */
export const AK_FORBIDDEN_ATTRIBUTES: readonly TpmaObjectFlag[] = ['decrypt']

/**
 * Throws a 400 naming every missing or forbidden attribute.
 *
 * @throws RegistrarError `ERR_REGISTRAR_AK_ATTRIBUTES`
 */
export function checkAkAttributes(ak: TpmPublic): void {
  const missing = AK_REQUIRED_ATTRIBUTES.filter((f) => (ak.objectAttributes & TPMA_OBJECT[f]) === 0)
  const extra = AK_FORBIDDEN_ATTRIBUTES.filter((f) => (ak.objectAttributes & TPMA_OBJECT[f]) !== 0)
  if (missing.length === 0 && extra.length === 0) return
  const parts: string[] = []
  if (missing.length > 0) parts.push(`missing ${missing.join(', ')}`)
  if (extra.length > 0) parts.push(`must not have ${extra.join(', ')}`)
  throw invalidData(
    `aik_tpm must be a restricted signing key bound to the TPM (objectAttributes 0x${(ak.objectAttributes >>> 0).toString(16).padStart(8, '0')}: ${parts.join('; ')})`,
    'ERR_REGISTRAR_AK_ATTRIBUTES',
  )
}
