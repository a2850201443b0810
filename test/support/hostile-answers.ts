/**
 * A catalogue of hostile `quotes/integrity` answers, each derived from a valid one, for the unit
 * tests of `checkQuoteAnswer` / `CheckPool` and the end-to-end hostile-agent test: the
 * `{"toString":1}` object of finding 1 in each algorithm field, a wrong JSON type in every field,
 * absurd sizes, numbers that are not safe integers, `results` that is not an object, and keys
 * that look like prototypes. Every answer is JSON text, as it arrives from the wire.
 *
 * @module
 */

import { QUOTE_ANSWER_SHAPE } from '../../src/verifier/checks/parse-quote-answer.ts'

/** The fields of a valid answer the cases start from (wire-formats §1.3). */
export interface BaseAnswer {
  quote: string
  hash_alg: string
  enc_alg: string
  sign_alg: string
  pubkey: string
  ima_measurement_list: string
  ima_measurement_list_entry: number
  boottime: number
}

/** One hostile answer. */
export interface HostileCase {
  /** Short description (test names, agent ids). */
  name: string
  /** The failure event the verifier must record for it. */
  event: string
  /** The `results` JSON text, from a valid answer. */
  build(base: BaseAnswer): string
}

/** A 1 MiB string (a field of absurd size, still within any answer cap). */
const HUGE = 'A'.repeat(1 << 20)

const INVALID = 'qoute_validation.invalid_data'

/** Values of the wrong JSON type, by description. */
const WRONG_TYPES: readonly [string, unknown][] = [
  ['toString object', { toString: 1 }],
  ['valueOf object', { valueOf: 1, toString: 1 }],
  ['array', ['sha256']],
  ['number', 7],
  ['boolean', true],
  ['nested object', { a: { b: [1, { c: null }] } }],
]

/** What {@link baseAnswer} needs of a soft TPM (`test/support/fleet/soft-tpm.ts` fits). */
export interface AnswerTpm {
  readonly nkPem: string
  bindNk(): void
  quote(nonce: string, pcrs: readonly number[]): { quote: string }
}

/** A valid answer of `tpm` to `nonce`: a quote of `pcrs` and 16 (NK bound), the whole list. */
export function baseAnswer(
  tpm: AnswerTpm,
  nonce: string,
  pcrs: readonly number[],
  imaList: string,
): BaseAnswer {
  tpm.bindNk()
  return {
    quote: tpm.quote(nonce, [...new Set([...pcrs, 16])]).quote,
    hash_alg: 'sha256',
    enc_alg: 'ecc',
    sign_alg: 'ecdsa',
    pubkey: tpm.nkPem,
    ima_measurement_list: imaList,
    ima_measurement_list_entry: 0,
    boottime: 1_700_000_000,
  }
}

function withField(field: string, value: unknown): (base: BaseAnswer) => string {
  return (base) => JSON.stringify({ ...base, [field]: value })
}

/** The catalogue: every field with every wrong type, plus sizes, numbers and shapes. */
export function hostileCases(): HostileCase[] {
  const out: HostileCase[] = []
  for (const [field, spec] of Object.entries(QUOTE_ANSWER_SHAPE)) {
    for (const [what, value] of WRONG_TYPES) {
      if (spec.kind === 'integer' && what === 'number') continue
      out.push({ name: `${field}: ${what}`, event: INVALID, build: withField(field, value) })
    }
    if (spec.kind === 'integer') {
      for (const [what, value] of [
        ['numeric string', '0'],
        ['negative', -1],
        ['fraction', 1.5],
        ['unsafe integer', 2 ** 60],
        ['1e308', 1e308],
      ] as const) {
        out.push({ name: `${field}: ${what}`, event: INVALID, build: withField(field, value) })
      }
    } else if (spec.maxLength < HUGE.length) {
      out.push({ name: `${field}: 1 MiB string`, event: INVALID, build: withField(field, HUGE) })
    }
  }
  out.push(
    { name: 'results: null', event: INVALID, build: () => 'null' },
    { name: 'results: array', event: INVALID, build: (b) => JSON.stringify([b]) },
    { name: 'results: string', event: INVALID, build: (b) => JSON.stringify(b.quote) },
    {
      name: 'fields only under __proto__',
      event: INVALID,
      build: (b) => `{"__proto__": ${JSON.stringify(b)}}`,
    },
    {
      name: 'quote missing, constructor.prototype.quote set',
      event: INVALID,
      build: (b) => {
        const { quote, ...rest } = b
        return JSON.stringify({ ...rest, constructor: { prototype: { quote } } })
      },
    },
  )
  return out
}
