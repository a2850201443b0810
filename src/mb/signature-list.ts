/**
 * EFI_SIGNATURE_LIST decoding (UEFI 2.10 §32.4.1) for the PK, KEK, db, dbx, vendor_db and MokList
 * variables that firmware measures into PCR 7 (EV_EFI_VARIABLE_DRIVER_CONFIG) and shim into PCR 14.
 *
 * Output follows tpm2-tools / upstream Keylime's enriched form: `{SignatureType, Keys: [{SignatureOwner,
 * SignatureData}]}`, GUIDs as text and data as lowercase hex, so reference states from upstream compare
 * directly. X.509 entries are described by `describeSignature` (describe-signature.ts), kept
 * out of the parse path so parsing stays cheap and needs no reflect-metadata.
 *
 * @module
 */

import { formatGuid, toHex } from './efi-text.ts'
import { MbError } from './errors.ts'

/** One EFI_SIGNATURE_DATA entry. */
export interface EfiSignature {
  /** SignatureOwner GUID (text). */
  SignatureOwner: string
  /** SignatureData, lowercase hex without prefix. */
  SignatureData: string
}

/** One EFI_SIGNATURE_LIST. */
export interface EfiSignatureList {
  /** SignatureType GUID (text), e.g. {@link EFI_GUID.CERT_X509}. */
  SignatureType: string
  /** The entries. */
  Keys: EfiSignature[]
}

function u32le(b: Uint8Array, o: number): number {
  return (
    ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16)) +
    (b[o + 3] as number) * 0x1000000
  )
}

/**
 * Parses a concatenation of EFI_SIGNATURE_LISTs (the value of PK/KEK/db/dbx). An empty input yields
 * an empty array (an unset variable).
 *
 * @throws {MbError} `ERR_MB_TRUNCATED` when a list's sizes are inconsistent with the bytes present.
 */
export function parseSignatureLists(b: Uint8Array): EfiSignatureList[] {
  const out: EfiSignatureList[] = []
  let o = 0
  while (o < b.length) {
    if (b.length - o < 28)
      throw new MbError('ERR_MB_TRUNCATED', `EFI_SIGNATURE_LIST header at ${o}`)
    const type = formatGuid(b.subarray(o, o + 16))
    const listSize = u32le(b, o + 16)
    const headerSize = u32le(b, o + 20)
    const sigSize = u32le(b, o + 24)
    if (listSize < 28 || listSize > b.length - o || headerSize > listSize - 28 || sigSize < 16) {
      throw new MbError('ERR_MB_TRUNCATED', `EFI_SIGNATURE_LIST sizes at ${o}`)
    }
    const body = listSize - 28 - headerSize
    if (body % sigSize !== 0)
      throw new MbError('ERR_MB_TRUNCATED', `EFI_SIGNATURE_LIST entries at ${o}`)
    const keys: EfiSignature[] = []
    for (let p = o + 28 + headerSize; p < o + listSize; p += sigSize) {
      keys.push({
        SignatureOwner: formatGuid(b.subarray(p, p + 16)),
        SignatureData: toHex(b.subarray(p + 16, p + sigSize)),
      })
    }
    out.push({ SignatureType: type, Keys: keys })
    o += listSize
  }
  return out
}
