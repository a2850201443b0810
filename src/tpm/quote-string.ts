/**
 * Keylime's quote string: `"r" + b64(TPMS_ATTEST) + ":" + b64(TPMT_SIGNATURE) + ":" + b64(pcrblob)`
 * (wire-formats §1.4; rust-keylime `keylime/src/tpm.rs::encode_quote_string`, upstream
 * `keylime/tpm/tpm_util.py::checkquote`). Standard base64; padding is optional on input (rust and
 * Python both pad; unpadded input is tolerated), any other character is rejected. The zlib
 * "compressed" form of API 1.0 (`c…`) is not supported.
 *
 * @module
 */

import { TpmError } from './errors.ts'

/** The three binary parts of a quote string. */
export interface QuoteParts {
  /** TPMS_ATTEST bytes (what the AK signed). */
  attest: Uint8Array
  /** TPMT_SIGNATURE bytes. */
  signature: Uint8Array
  /** tpm2-tools serialized PCR blob. */
  pcrBlob: Uint8Array
}

/** Upper bound on a quote string (a 16-bank, 24-PCR blob is ~26 KiB in base64). */
export const MAX_QUOTE_STRING = 64 * 1024

/** ASCII whitespace: `Uint8Array.fromBase64` skips it, and no Keylime quote contains it. */
const WHITESPACE = /[\t\n\f\r ]/

/**
 * Decodes one part: standard base64, padding optional but correct when present (no whitespace,
 * no URL-safe alphabet).
 */
function decodePart(s: string, what: string): Uint8Array {
  if (s.length === 0 || WHITESPACE.test(s)) {
    throw new TpmError('ERR_QUOTE_FORMAT', `quote ${what} is not base64`)
  }
  try {
    return Uint8Array.fromBase64(s)
  } catch {
    throw new TpmError('ERR_QUOTE_FORMAT', `quote ${what} is not base64`)
  }
}

/**
 * Splits and base64-decodes a quote string.
 *
 * @throws {TpmError} `ERR_QUOTE_FORMAT` if it is not `r<b64>:<b64>:<b64>`.
 */
export function parseQuoteString(quote: string): QuoteParts {
  if (typeof quote !== 'string' || quote.length > MAX_QUOTE_STRING) {
    throw new TpmError('ERR_QUOTE_FORMAT', 'quote is not a string of acceptable length')
  }
  if (quote[0] !== 'r') throw new TpmError('ERR_QUOTE_FORMAT', "quote does not start with 'r'")
  const parts = quote.slice(1).split(':')
  if (parts.length !== 3) {
    throw new TpmError('ERR_QUOTE_FORMAT', `quote has ${parts.length} parts, expected 3`)
  }
  return {
    attest: decodePart(parts[0] ?? '', 'attest'),
    signature: decodePart(parts[1] ?? '', 'signature'),
    pcrBlob: decodePart(parts[2] ?? '', 'pcr blob'),
  }
}

function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')
}

/** Builds a quote string from its parts (padded standard base64, as rust-keylime sends). */
export function serializeQuoteString(parts: QuoteParts): string {
  return `r${b64(parts.attest)}:${b64(parts.signature)}:${b64(parts.pcrBlob)}`
}
