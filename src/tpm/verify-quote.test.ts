import { describe, expect, test } from 'bun:test'
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto'
import { ByteWriter } from './byte-writer.ts'
import { HASH_ALG_ID, type HashAlg, TPM_ALG_ID, TPM_GENERATED_VALUE, TPM_ST } from './constants.ts'
import { isTpmError, type TpmErrorCode } from './errors.ts'
import { checkNkBinding } from './extend-pcr.ts'
import {
  loadFixtureNkPem,
  loadQuoteFixtures,
  type QuoteFixture,
} from '../../test/support/load-quote-fixtures.ts'
import { parsePcrBlob, serializePcrBlob } from './pcr-blob.ts'
import { type PcrSelection, writePcrSelection } from './pcr-selection.ts'
import { parseTpm2bPublic, toKeyObject } from './public-area.ts'
import { type QuoteParts, parseQuoteString, serializeQuoteString } from './quote-string.ts'
import { computePcrDigest, type VerifyQuoteParams, verifyQuote } from './verify-quote.ts'

const fixtures = loadQuoteFixtures()
const keys = new Map(fixtures.map((f) => [f.name, toKeyObject(parseTpm2bPublic(f.akPub))]))
const keyOf = (f: QuoteFixture): KeyObject => keys.get(f.name) as KeyObject
const partsOf = (f: QuoteFixture): QuoteParts => ({
  attest: f.attest,
  signature: f.signature,
  pcrBlob: f.pcrBlob,
})

/** The error code verifyQuote throws, or 'ok'. Untyped errors fail the test loudly. */
function outcome(p: VerifyQuoteParams): TpmErrorCode | 'ok' {
  try {
    verifyQuote(p)
    return 'ok'
  } catch (e) {
    if (!isTpmError(e)) throw new Error(`untyped error: ${String(e)}`)
    return e.code
  }
}

function flip(b: Uint8Array, bit: number): Uint8Array {
  const out = b.slice()
  out[bit >> 3] = (out[bit >> 3] ?? 0) ^ (1 << (bit & 7))
  return out
}

const PARSE_CODES: ReadonlySet<string> = new Set([
  'ERR_TPM_TRUNCATED',
  'ERR_TPM_TRAILING_BYTES',
  'ERR_TPM_BAD_VALUE',
  'ERR_TPM_UNSUPPORTED',
])

describe('verifyQuote on swtpm fixtures', () => {
  test('fixtures cover RSASSA, RSAPSS, ECDSA and sha1/sha256/sha384', () => {
    expect(new Set(fixtures.map((f) => f.signAlg))).toEqual(new Set(['rsassa', 'rsapss', 'ecdsa']))
    expect(new Set(fixtures.map((f) => f.hashAlg))).toEqual(new Set(['sha1', 'sha256', 'sha384']))
  })

  for (const f of fixtures) {
    describe(f.name, () => {
      const base = { akPublic: keyOf(f), nonce: f.nonce, hashAlg: f.hashAlg, signAlg: f.signAlg }

      test('verifies (string, parts, TpmPublic, Uint8Array nonce) and reports the PCRs', () => {
        const r = verifyQuote({ ...base, quote: f.quote })
        const want = f.pcrList.split('+').map((s) => {
          const [bank, list] = s.split(':')
          return `${bank}:${list}`
        })
        expect([...r.pcrs].map(([b, m]) => `${b}:${[...m.keys()].join(',')}`)).toEqual(want)
        expect(r.signAlg).toBe(f.signAlg)
        expect(r.clockInfo.safe).toBe(true)
        expect(r.clockInfo.resetCount).toBeGreaterThanOrEqual(0)
        // the fixture script bound PCR16 to nk.pem in every bank
        for (const bank of r.pcrs.keys())
          checkNkBinding(r.pcrs, bank as HashAlg, loadFixtureNkPem())
        expect(outcome({ ...base, quote: partsOf(f) })).toBe('ok')
        expect(outcome({ ...base, quote: f.quote, akPublic: parseTpm2bPublic(f.akPub) })).toBe('ok')
        expect(outcome({ ...base, quote: f.quote, nonce: Buffer.from(f.nonce) })).toBe('ok')
        expect(serializeQuoteString(parseQuoteString(f.quote))).toBe(f.quote)
      })

      test('every single-bit flip of the attest is ERR_QUOTE_SIGNATURE', () => {
        for (let bit = 0; bit < f.attest.byteLength * 8; bit++) {
          const quote = { ...partsOf(f), attest: flip(f.attest, bit) }
          expect(`${bit}:${outcome({ ...base, quote })}`).toBe(`${bit}:ERR_QUOTE_SIGNATURE`)
        }
      })

      test('bit flips in the signature: body → ERR_QUOTE_SIGNATURE, header → typed parse/scheme errors', () => {
        const bodyStart = 6 // sigAlg, hashAlg, first TPM2B size
        const ecc = f.keyAlg === 'ecc'
        const rLen = ecc ? ((f.signature[4] ?? 0) << 8) | (f.signature[5] ?? 0) : 0
        const sizeField = (i: number): boolean =>
          i < bodyStart || (ecc && (i === 6 + rLen || i === 7 + rLen))
        for (let i = 0; i < f.signature.byteLength; i++) {
          for (const b of [i % 8, (i * 5 + 3) % 8]) {
            const got = outcome({
              ...base,
              quote: { ...partsOf(f), signature: flip(f.signature, i * 8 + b) },
            })
            if (sizeField(i)) {
              const allowed = new Set([
                ...PARSE_CODES,
                'ERR_QUOTE_SIG_SCHEME',
                'ERR_QUOTE_HASH_ALG',
                'ERR_QUOTE_SIGNATURE',
              ])
              expect(allowed.has(got) ? 'typed' : `${i}:${got}`).toBe('typed')
            } else {
              expect(`${i}:${got}`).toBe(`${i}:ERR_QUOTE_SIGNATURE`)
            }
          }
        }
      })

      test('bit flips in the PCR blob: values → ERR_QUOTE_PCR_DIGEST, structure → typed errors', () => {
        const blob = parsePcrBlob(f.pcrBlob)
        const valueBytes = new Set<number>()
        for (const v of blob.values) {
          for (let k = 0; k < v.value.byteLength; k++)
            valueBytes.add(v.value.byteOffset - f.pcrBlob.byteOffset + k)
        }
        expect(valueBytes.size).toBeGreaterThan(0)
        const structural = new Set([...PARSE_CODES, 'ERR_QUOTE_PCR_SELECTION'])
        for (let i = 0; i < f.pcrBlob.byteLength; i++) {
          const got = outcome({
            ...base,
            quote: { ...partsOf(f), pcrBlob: flip(f.pcrBlob, i * 8 + ((i * 3) % 8)) },
          })
          if (valueBytes.has(i)) expect(`${i}:${got}`).toBe(`${i}:ERR_QUOTE_PCR_DIGEST`)
          else expect(structural.has(got) ? 'typed' : `${i}:${got}`).toBe('typed')
        }
      })

      test('every bit flip, truncation and extension of the nonce is ERR_QUOTE_NONCE', () => {
        const n = Buffer.from(f.nonce)
        for (let bit = 0; bit < n.byteLength * 8; bit++) {
          expect(outcome({ ...base, quote: partsOf(f), nonce: flip(n, bit) })).toBe(
            'ERR_QUOTE_NONCE',
          )
        }
        expect(outcome({ ...base, quote: partsOf(f), nonce: f.nonce.slice(0, -1) })).toBe(
          'ERR_QUOTE_NONCE',
        )
        expect(outcome({ ...base, quote: partsOf(f), nonce: `${f.nonce}0` })).toBe(
          'ERR_QUOTE_NONCE',
        )
        expect(outcome({ ...base, quote: partsOf(f), nonce: '' })).toBe('ERR_QUOTE_NONCE')
      })

      test('another AK is rejected', () => {
        for (const other of fixtures) {
          if (other.name === f.name) continue
          const want = other.keyAlg === f.keyAlg ? 'ERR_QUOTE_SIGNATURE' : 'ERR_QUOTE_SIG_SCHEME'
          expect(outcome({ ...base, quote: f.quote, akPublic: keyOf(other) })).toBe(want)
        }
      })

      test('wrong hash or scheme expectations are rejected with their own codes', () => {
        const otherHash: HashAlg = f.hashAlg === 'sha256' ? 'sha384' : 'sha256'
        expect(outcome({ ...base, quote: f.quote, hashAlg: otherHash })).toBe('ERR_QUOTE_HASH_ALG')
        const otherScheme =
          f.signAlg === 'rsassa' ? 'rsapss' : f.signAlg === 'rsapss' ? 'rsassa' : 'rsassa'
        expect(outcome({ ...base, quote: f.quote, signAlg: otherScheme })).toBe(
          'ERR_QUOTE_SIG_SCHEME',
        )
      })
    })
  }
})

describe('verifyQuote on software-signed quotes (magic, type, selection)', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const sel: PcrSelection[] = [{ hashAlg: TPM_ALG_ID.SHA256, pcrs: [10, 16] }]
  const values = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)]

  function makeQuote(o: {
    magic?: number
    type?: number
    attestSel?: PcrSelection[]
    digest?: Uint8Array
  }): QuoteParts {
    const w = new ByteWriter()
    w.u32(o.magic ?? TPM_GENERATED_VALUE).u16(o.type ?? TPM_ST.ATTEST_QUOTE)
    w.tpm2b(new Uint8Array(34)).tpm2b(Buffer.from('nonce'))
    w.u64(5n).u32(1).u32(0).u8(1).u64(42n)
    writePcrSelection(w, o.attestSel ?? sel)
    w.tpm2b(
      o.digest ??
        computePcrDigest(
          'sha256',
          values.map((value) => ({ value })),
        ),
    )
    const attest = w.finish()
    const der = sign('sha256', attest, { key: privateKey, dsaEncoding: 'ieee-p1363' })
    const sig = new ByteWriter().u16(TPM_ALG_ID.ECDSA).u16(HASH_ALG_ID.sha256)
    sig.tpm2b(der.subarray(0, 32)).tpm2b(der.subarray(32))
    return { attest, signature: sig.finish(), pcrBlob: serializePcrBlob(sel, values) }
  }
  const p = { akPublic: publicKey, nonce: 'nonce', hashAlg: 'sha256' as const }

  test('a well-formed software quote verifies and returns clock info', () => {
    const r = verifyQuote({ ...p, quote: makeQuote({}) })
    expect(r.clockInfo).toEqual({ clock: 5n, resetCount: 1, restartCount: 0, safe: true })
    expect(r.firmwareVersion).toBe(42n)
    expect(r.pcrs.get('sha256')?.get(16)).toEqual(values[1])
  })
  test('bad magic → ERR_QUOTE_MAGIC', () => {
    expect(outcome({ ...p, quote: makeQuote({ magic: 0xff544348 }) })).toBe('ERR_QUOTE_MAGIC')
  })
  test('certify / other type → ERR_QUOTE_TYPE', () => {
    expect(outcome({ ...p, quote: makeQuote({ type: TPM_ST.ATTEST_CERTIFY }) })).toBe(
      'ERR_QUOTE_TYPE',
    )
    expect(outcome({ ...p, quote: makeQuote({ type: TPM_ST.ATTEST_TIME }) })).toBe('ERR_QUOTE_TYPE')
  })
  test('selection in attest ≠ selection in blob → ERR_QUOTE_PCR_SELECTION', () => {
    const other = [{ hashAlg: TPM_ALG_ID.SHA256, pcrs: [10, 17] }]
    expect(outcome({ ...p, quote: makeQuote({ attestSel: other }) })).toBe(
      'ERR_QUOTE_PCR_SELECTION',
    )
  })
  test('wrong pcrDigest → ERR_QUOTE_PCR_DIGEST', () => {
    expect(outcome({ ...p, quote: makeQuote({ digest: new Uint8Array(32) }) })).toBe(
      'ERR_QUOTE_PCR_DIGEST',
    )
  })
  test('malformed quote strings → ERR_QUOTE_FORMAT', () => {
    const good = serializeQuoteString(makeQuote({}))
    for (const bad of [
      '',
      'x' + good.slice(1),
      good.slice(1),
      `${good}:AAAA`,
      good.replace(':', ''),
      `r!!!!:${good.slice(1).split(':').slice(1).join(':')}`,
      'r::',
      'rA:AAAA:AAAA',
      'r'.repeat(70000),
    ]) {
      expect(outcome({ ...p, quote: bad })).toBe('ERR_QUOTE_FORMAT')
    }
    // each part: whitespace, the URL-safe alphabet, misplaced or excess padding
    const [attest, sig, blob] = good.slice(1).split(':') as [string, string, string]
    for (const bad of [
      `${attest.slice(0, 8)} ${attest.slice(8)}`,
      `${attest.slice(0, 8)}\n${attest.slice(8)}`,
      `${attest}\n`,
      attest.replace(/[+/]/g, '-').replace(/^./, '_'),
      `${attest.replace(/=+$/, '')}===`,
      `=${attest}`,
      `${attest.slice(0, 4)}=${attest.slice(4)}`,
      'A',
    ]) {
      expect(outcome({ ...p, quote: `r${bad}:${sig}:${blob}` })).toBe('ERR_QUOTE_FORMAT')
      expect(outcome({ ...p, quote: bad })).toBe('ERR_QUOTE_FORMAT')
    }
    // unpadded base64 is tolerated
    expect(outcome({ ...p, quote: good.replace(/=/g, '') })).toBe('ok')
  })
})
