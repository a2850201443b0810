/**
 * The `results` of an agent's `GET /quotes/integrity` answer (wire-formats §1.3, rust-keylime
 * `KeylimeQuote`), declared once and read by type before any check touches it. Every agent may be
 * compromised: a field of the wrong JSON type or an absurd size fails the round as
 * `qoute_validation.invalid_data` (upstream's event of `process_quote_response`) instead of
 * reaching a parser, a `String()` or a failure message.
 *
 * Size bounds: the quote and the algorithm names have small fixed caps; the IMA list and the UEFI
 * log are bounded only by the cap on the whole agent answer (`agent-connections.ts`), since a
 * busy server's full IMA list is legitimately large.
 *
 * @module
 */
import { type JsonShape, readJsonShape, type ShapeValue } from './read-json-shape.ts'

/**
 * Longest quote string accepted: `r` + base64 of TPMS_ATTEST, TPMT_SIGNATURE and the PCR blob.
 * The largest genuine one (RSA-4096 signature, 24 PCRs of sha512: 136 + 3 × 532 bytes of blob)
 * is under 4 KiB; 64 KiB leaves room without letting a field carry megabytes.
 */
export const MAX_QUOTE_LENGTH = 65_536
/** Longest algorithm name (`hash_alg`, `enc_alg`, `sign_alg`; the real ones are ≤ 8). */
export const MAX_ALG_LENGTH = 32
/** Longest `pubkey` PEM (an RSA-16384 SPKI PEM is ~2.9 KB). */
export const MAX_PUBKEY_LENGTH = 16_384

const UNBOUNDED = Number.MAX_SAFE_INTEGER

/** The declared shape of the answer. */
export const QUOTE_ANSWER_SHAPE = {
  quote: { kind: 'string', maxLength: MAX_QUOTE_LENGTH },
  hash_alg: { kind: 'string', maxLength: MAX_ALG_LENGTH, optional: true },
  enc_alg: { kind: 'string', maxLength: MAX_ALG_LENGTH, optional: true },
  sign_alg: { kind: 'string', maxLength: MAX_ALG_LENGTH, optional: true },
  pubkey: { kind: 'string', maxLength: MAX_PUBKEY_LENGTH, optional: true },
  ima_measurement_list: { kind: 'string', maxLength: UNBOUNDED, optional: true },
  ima_measurement_list_entry: { kind: 'integer', min: 0, max: UNBOUNDED, optional: true },
  mb_measurement_list: { kind: 'string', maxLength: UNBOUNDED, optional: true },
  boottime: { kind: 'integer', min: 0, max: UNBOUNDED, optional: true },
} as const satisfies JsonShape

/** A quote answer whose every field has the declared type and size. */
export type QuoteAnswer = ShapeValue<typeof QUOTE_ANSWER_SHAPE>

/** Result of {@link parseQuoteAnswer}: the typed answer, or what is wrong with it. */
export type ParsedQuoteAnswer = { ok: true; answer: QuoteAnswer } | { ok: false; problem: string }

/** Reads an agent's `results` as a {@link QuoteAnswer}. Never throws. */
export function parseQuoteAnswer(results: unknown): ParsedQuoteAnswer {
  const r = readJsonShape(results, QUOTE_ANSWER_SHAPE)
  if (!r.ok) return { ok: false, problem: r.field === '' ? `results ${r.problem}` : r.problem }
  return { ok: true, answer: r.value }
}
