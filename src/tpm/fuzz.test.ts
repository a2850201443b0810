import { describe, expect, test } from 'bun:test'
import { parseTpmsAttest } from './attest.ts'
import { isTpmError } from './errors.ts'
import { caseSeed, fuzzParser, mutate } from '../../test/support/fuzz/fuzz-parser.ts'
import { loadQuoteFixtures } from '../../test/support/load-quote-fixtures.ts'
import { parsePcrBlob } from './pcr-blob.ts'
import { parsePcrSelection, writePcrSelection } from './pcr-selection.ts'
import { ByteWriter } from './byte-writer.ts'
import { TPM_ST } from './constants.ts'
import { parseTpm2bPublic, parseTpmtPublic, toKeyObject } from './public-area.ts'
import { parseQuoteString } from './quote-string.ts'
import { parseTpmtSignature } from './signature.ts'
import { verifyQuote } from './verify-quote.ts'

const fx = loadQuoteFixtures()
const CASES = 5000
const opts = { cases: CASES, seed: 20260721, isTypedError: (e: unknown) => isTpmError(e) }
const enc = new TextEncoder()
const dec = new TextDecoder('latin1')

const parsers: [string, Uint8Array[], (b: Uint8Array) => unknown][] = [
  ['TPM2B_PUBLIC', fx.map((f) => f.akPub), (b) => toKeyObjectIfKey(parseTpm2bPublic(b))],
  ['TPMT_PUBLIC', fx.map((f) => f.akPub.subarray(2)), (b) => parseTpmtPublic(b)],
  ['TPMS_ATTEST', fx.map((f) => f.attest), (b) => parseTpmsAttest(b)],
  ['TPMT_SIGNATURE', fx.map((f) => f.signature), (b) => parseTpmtSignature(b)],
  ['TPML_PCR_SELECTION', fx.map(selectionBytes), (b) => parsePcrSelection(b)],
  ['PCR blob', fx.map((f) => f.pcrBlob), (b) => parsePcrBlob(b)],
  ['quote string', fx.map((f) => enc.encode(f.quote)), (b) => parseQuoteString(dec.decode(b))],
]

function selectionBytes(f: (typeof fx)[number]): Uint8Array {
  const a = parseTpmsAttest(f.attest)
  const w = new ByteWriter()
  if (a.type === TPM_ST.ATTEST_QUOTE) writePcrSelection(w, a.quote.pcrSelect)
  return w.finish()
}

function toKeyObjectIfKey(p: ReturnType<typeof parseTpm2bPublic>): unknown {
  // exercise the key conversion too: a parsed public area must convert or fail typed
  return toKeyObject(p)
}

describe(`fuzz: ${CASES} mutated cases per parser return or throw TpmError`, () => {
  for (const [name, seeds, parse] of parsers) {
    test(name, () => {
      const r = fuzzParser(name, seeds, parse, opts)
      expect(r.failures).toEqual([])
      expect(r.accepted + r.rejected).toBe(CASES)
      expect(r.rejected).toBeGreaterThan(CASES / 4) // mutations do hit the checks
      expect(r.maxMs).toBeLessThan(250)
    })
  }

  test('verifyQuote over mutated attest / signature / PCR blob parts', () => {
    const f = fx[0]
    if (f === undefined) throw new Error('no fixtures')
    const key = toKeyObject(parseTpm2bPublic(f.akPub))
    const run = (part: 'attest' | 'signature' | 'pcrBlob', seeds: Uint8Array[]) =>
      fuzzParser(
        `verifyQuote/${part}`,
        seeds,
        (b) =>
          verifyQuote({
            quote: { attest: f.attest, signature: f.signature, pcrBlob: f.pcrBlob, [part]: b },
            akPublic: key,
            nonce: f.nonce,
            hashAlg: f.hashAlg,
          }),
        { ...opts, cases: 1500 },
      )
    for (const [part, seeds] of [
      ['attest', fx.map((x) => x.attest)],
      ['signature', fx.map((x) => x.signature)],
      ['pcrBlob', fx.map((x) => x.pcrBlob)],
    ] as const) {
      const r = run(part, [...seeds])
      expect(r.failures).toEqual([])
      expect(r.accepted).toBeLessThan(r.cases / 10) // tampering is almost never accepted
    }
  })

  test('mutations are deterministic in the seed, and a non-TpmError is reported', () => {
    const seeds = [Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])]
    expect(mutate(seeds, caseSeed(7, 3))).toEqual(mutate(seeds, caseSeed(7, 3)))
    const r = fuzzParser(
      'broken',
      seeds,
      (b) => {
        if (b.length > 8) throw new RangeError('boom')
      },
      { cases: 200, isTypedError: isTpmError },
    )
    expect(r.failures.length).toBeGreaterThan(0)
    expect(r.failures[0]?.problem).toContain('RangeError')
    const again = r.failures[0]
    if (again === undefined) throw new Error('no failure')
    expect(Buffer.from(mutate(seeds, again.caseSeed)).toString('hex')).toBe(again.inputHex)
  })
})

test('mutate never changes its seeds, Buffer seeds included (a Buffer slice is a view)', () => {
  const seeds = [Buffer.from('0123456789abcdef'), new Uint8Array(64).fill(7)]
  const before = seeds.map((s) => Buffer.from(s).toString('hex'))
  for (let i = 0; i < 2000; i++) mutate(seeds, caseSeed(3, i))
  expect(seeds.map((s) => Buffer.from(s).toString('hex'))).toEqual(before)
})
