/**
 * The parsed form of one IMA measurement-list entry and the template names keylime-ts accepts.
 *
 * Templates (kernel `security/integrity/ima/ima_template.c`): `ima` (d|n), `ima-ng` (d-ng|n-ng),
 * `ima-sig` (d-ng|n-ng|sig), `ima-buf` (d-ng|n-ng|buf), `ima-modsig` (d-ng|n-ng|sig|d-modsig|modsig),
 * `ima-ngv2` (d-ngv2|n-ng), `ima-sigv2` (d-ngv2|n-ng|sig). Upstream Keylime accepts only the
 * first four; the last three are a keylime-ts extension (wire-formats §7.1).
 *
 * @module
 */

/** Template names keylime-ts parses. */
export const IMA_TEMPLATES = [
  'ima',
  'ima-ng',
  'ima-sig',
  'ima-buf',
  'ima-modsig',
  'ima-ngv2',
  'ima-sigv2',
] as const

/** One of {@link IMA_TEMPLATES}. */
export type ImaTemplate = (typeof IMA_TEMPLATES)[number]

/** True when `s` names a supported template. */
export function isImaTemplate(s: string): s is ImaTemplate {
  return (IMA_TEMPLATES as readonly string[]).includes(s)
}

/** One measurement-list entry. */
export interface ImaEntry {
  /** 1-based line (ASCII) or entry (binary) number within the list it came from. */
  line: number
  /** The PCR the entry was extended into (10 for IMA). */
  pcr: number
  /** Column 2: the template hash, lowercase hex (all zeros for a violation / ToMToU entry). */
  templateHash: string
  /** Template name. */
  template: ImaTemplate
  /** Digest algorithm of the file digest (`sha256`, `sha1`, `md5`, …). */
  digestAlg: string
  /** `ima` or `verity` for the v2 digest (`d-ngv2`); empty otherwise. */
  digestType: string
  /** File digest, lowercase hex. */
  digest: string
  /** Path (or buffer / keyring name for ima-buf). */
  name: string
  /** The `sig` field (ima-sig, ima-sigv2, ima-modsig), or null when empty / absent. */
  sig: Uint8Array | null
  /** The `buf` field (ima-buf), or null. */
  buf: Uint8Array | null
  /**
   * The template data: exactly the bytes the kernel hashes into the template hash. From the
   * streaming parser this is a view into a scratch buffer, valid until the next line is parsed.
   */
  templateData: Uint8Array
}
