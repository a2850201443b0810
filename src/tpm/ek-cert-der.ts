/**
 * A strict ASN.1 DER conformance check (ITU-T X.690 §10–11) for certificates.
 *
 * Upstream Keylime parses certificates with python-cryptography, which insists on DER, and when
 * that fails decodes them with the lenient pyasn1 and re-encodes them as DER (keylime issue #944,
 * pyca/cryptography#7189; `keylime/models/base/types/certificate.py`). Whether that happened is
 * what `[registrar] malformed_cert_action` (`warn` | `reject` | `ignore`) acts on. The cases seen in
 * real EK certificates, and what this check reports, are those pyasn1's re-encoding repairs:
 *
 * - `SET OF` elements not in DER order (Nuvoton NPCT75x: multi-valued RDNs in issuer and SAN),
 * - non-minimal length octets, or the BER indefinite length,
 * - non-minimal INTEGERs, BOOLEAN TRUE encoded other than `FF`,
 * - constructed (BER, segmented) BIT/OCTET/character strings,
 * - bytes after the outer SEQUENCE (EK certificates read from NV with padding; rust-keylime's
 *   `check_ek_cert` truncates them).
 *
 * The walker is bounded (depth 32, input as given); malformed TLV structure itself (a length past
 * the end) throws `ERR_EK_CERT_MALFORMED`, since no ASN.1 parser could read it.
 *
 * @module
 */

import { EkCertError } from './ek-cert-error.ts'

/** Result of {@link checkDer}. */
export interface DerCheck {
  /** Offset just past the outer element: the DER certificate is `bytes.subarray(0, end)`. */
  end: number
  /** Human-readable DER violations, `"<what> at <offset>"`; empty for strict DER. */
  issues: string[]
}

const MAX_DEPTH = 32
const MAX_ISSUES = 16

/** Universal tags that must be primitive in DER (X.690 §10.2). */
const PRIMITIVE_ONLY = new Set([
  0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0a, 0x0c, 0x12, 0x13, 0x14, 0x16, 0x17, 0x18, 0x1a, 0x1e,
])

interface Tlv {
  tagClass: number
  constructed: boolean
  tag: number
  headerEnd: number
  end: number
}

function fail(message: string): never {
  throw new EkCertError('ERR_EK_CERT_MALFORMED', message)
}

/** DER order of SET OF components: octet-string comparison, shorter padded with zeros (§11.6). */
function compareDer(a: Uint8Array, b: Uint8Array): number {
  const n = Math.max(a.byteLength, b.byteLength)
  for (let i = 0; i < n; i++) {
    const x = a[i] ?? 0
    const y = b[i] ?? 0
    if (x !== y) return x - y
  }
  return 0
}

/** Reads one TLV header at `pos`, recording DER length-encoding issues. */
function readTlv(bytes: Uint8Array, pos: number, limit: number, issues: string[]): Tlv {
  const start = pos
  if (pos >= limit) fail(`truncated ASN.1 at offset ${pos}`)
  const first = bytes[pos++]!
  const tagClass = first >> 6
  const constructed = (first & 0x20) !== 0
  let tag = first & 0x1f
  if (tag === 0x1f) {
    tag = 0
    for (let i = 0; ; i++) {
      if (pos >= limit || i > 4) fail(`bad high tag number at offset ${start}`)
      const b = bytes[pos++]!
      tag = tag * 128 + (b & 0x7f)
      if ((b & 0x80) === 0) break
    }
  }
  if (pos >= limit) fail(`truncated ASN.1 length at offset ${start}`)
  const lb = bytes[pos++]!
  let len: number
  if (lb < 0x80) {
    len = lb
  } else if (lb === 0x80) {
    issues.push(`indefinite length at ${start}`)
    return { tagClass, constructed, tag, headerEnd: pos, end: -1 }
  } else {
    const n = lb & 0x7f
    if (n > 4 || pos + n > limit) fail(`bad ASN.1 length at offset ${start}`)
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + bytes[pos++]!
    if (len < 0x80 || bytes[pos - n] === 0) issues.push(`non-minimal length at ${start}`)
  }
  if (pos + len > limit) fail(`ASN.1 element at offset ${start} runs past its container`)
  return { tagClass, constructed, tag, headerEnd: pos, end: pos + len }
}

function walk(
  bytes: Uint8Array,
  pos: number,
  limit: number,
  depth: number,
  issues: string[],
): number {
  if (depth > MAX_DEPTH) fail('ASN.1 nesting too deep')
  const t = readTlv(bytes, pos, limit, issues)
  if (t.end < 0) return -1
  const universal = t.tagClass === 0
  if (universal && t.constructed && PRIMITIVE_ONLY.has(t.tag)) {
    issues.push(`constructed encoding of universal type ${t.tag} at ${pos}`)
  }
  if (universal && !t.constructed) {
    const len = t.end - t.headerEnd
    const b0 = bytes[t.headerEnd]
    const b1 = bytes[t.headerEnd + 1] ?? 0
    if (t.tag === 0x01 && (len !== 1 || (b0 !== 0x00 && b0 !== 0xff))) {
      issues.push(`BOOLEAN not encoded as 00/FF at ${pos}`)
    }
    if (t.tag === 0x02) {
      if (len === 0) issues.push(`empty INTEGER at ${pos}`)
      else if (len > 1 && ((b0 === 0 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80))) {
        issues.push(`non-minimal INTEGER at ${pos}`)
      }
    }
  }
  if (t.constructed) {
    let p = t.headerEnd
    let prev: Uint8Array | undefined
    while (p < t.end) {
      const childEnd = walk(bytes, p, t.end, depth + 1, issues)
      if (childEnd < 0) return -1
      const child = bytes.subarray(p, childEnd)
      if (universal && t.tag === 0x11 && prev !== undefined && compareDer(prev, child) > 0) {
        issues.push(`SET OF not in DER order at ${pos}`)
      }
      prev = child
      p = childEnd
    }
  }
  if (issues.length > MAX_ISSUES) issues.length = MAX_ISSUES
  return t.end
}

/**
 * Checks that `bytes` starts with one DER-conformant ASN.1 element and reports every deviation.
 *
 * @returns where the outer element ends (trailing bytes are reported as an issue) and the issues
 * @throws EkCertError `ERR_EK_CERT_MALFORMED` if the TLV structure itself is broken
 */
export function checkDer(bytes: Uint8Array): DerCheck {
  const issues: string[] = []
  const end = walk(bytes, 0, bytes.byteLength, 0, issues)
  if (end < 0) return { end: bytes.byteLength, issues }
  if (end < bytes.byteLength) issues.push(`${bytes.byteLength - end} trailing bytes at ${end}`)
  return { end, issues }
}

/**
 * Returns the raw bytes of the children of the constructed element at offset 0 (no copies).
 * Used to take `tbsCertificate` exactly as signed, whatever a lenient decoder would re-encode.
 *
 * @throws EkCertError `ERR_EK_CERT_MALFORMED` on broken or indefinite-length structure
 */
export function derChildren(bytes: Uint8Array): Uint8Array[] {
  const ignored: string[] = []
  const outer = readTlv(bytes, 0, bytes.byteLength, ignored)
  if (outer.end < 0 || !outer.constructed) fail('expected a definite-length constructed element')
  const out: Uint8Array[] = []
  let p = outer.headerEnd
  while (p < outer.end) {
    const t = readTlv(bytes, p, outer.end, ignored)
    if (t.end < 0) fail('indefinite length inside the certificate')
    out.push(bytes.subarray(p, t.end))
    p = t.end
  }
  return out
}

/**
 * Returns the content octets of the definite-length element at offset 0 of `tlv`.
 *
 * @throws EkCertError `ERR_EK_CERT_MALFORMED` on broken or indefinite-length structure
 */
export function derContent(tlv: Uint8Array): Uint8Array {
  const t = readTlv(tlv, 0, tlv.byteLength, [])
  if (t.end < 0) fail('indefinite length')
  return tlv.subarray(t.headerEnd, t.end)
}
