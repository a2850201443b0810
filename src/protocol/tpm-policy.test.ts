import { describe, expect, test } from 'bun:test'
import {
  checkUserTpmPolicy,
  formatMask,
  parseTpmPolicy,
  type TpmPolicyError,
  tpmPolicyToJson,
} from './tpm-policy.ts'

/** Matches a thrown {@link TpmPolicyError} of `reason`. */
const problem = (reason: TpmPolicyError['reason']) => expect.objectContaining({ reason })

describe('parseTpmPolicy (the grammar every role shares)', () => {
  test('singletons wrapped, digests lower-cased, mask derived from the PCRs', () => {
    const p = parseTpmPolicy('{"15":"AB","0":["01","02"]}')
    expect(p.mask).toBe(0x8001)
    expect([...p.pcrs]).toEqual([
      [0, ['01', '02']],
      [15, ['ab']],
    ])
    expect(tpmPolicyToJson(p)).toEqual({ '0': ['01', '02'], '15': ['ab'], mask: '0x8001' })
  })

  test('an explicit mask wins and is cut to 24 bits; objects are taken as they are', () => {
    expect(parseTpmPolicy({ mask: '0x408000' }).mask).toBe(0x408000)
    expect(parseTpmPolicy('{"mask":"ff000001"}').mask).toBe(1)
  })

  test('empty text and null are the empty policy', () => {
    for (const t of ['', '  ', 'null', null, undefined])
      expect(parseTpmPolicy(t)).toEqual({ mask: 0, pcrs: new Map() })
  })

  test('PCR 24 parses (upstream readPolicy refuses only > 24) but selects no mask bit', () => {
    const p = parseTpmPolicy('{"24":"00","10":"00","16":"00"}')
    expect([...p.pcrs.keys()]).toEqual([10, 16, 24])
    expect(formatMask(p.mask)).toBe('0x10400')
  })

  test('malformed policies name their problem', () => {
    expect(() => parseTpmPolicy('{')).toThrow(problem('json'))
    expect(() => parseTpmPolicy('[1]')).toThrow(problem('not-object'))
    expect(() => parseTpmPolicy('{"mask":"0xzz"}')).toThrow(problem('mask'))
    expect(() => parseTpmPolicy('{"25":"00"}')).toThrow(problem('pcr'))
    expect(() => parseTpmPolicy('{"x":"00"}')).toThrow(problem('pcr'))
    expect(() => parseTpmPolicy('{"1":"xyz"}')).toThrow(problem('digest'))
    expect(() => parseTpmPolicy(`{"1":"${'a'.repeat(129)}"}`)).toThrow(problem('digest'))
  })

  test('errors are 400 Bad Request with the verifier wording', () => {
    expect(() => parseTpmPolicy('{"99":"00"}')).toThrow(
      expect.objectContaining({
        status: 400,
        code: 'ERR_BAD_REQUEST',
        message: 'tpm_policy: invalid PCR number "99"',
      }),
    )
  })
})

describe('checkUserTpmPolicy (the tenant rule for --tpm_policy)', () => {
  test('PCR 10, 16 and 24 are refused with upstream readPolicy messages', () => {
    const check = (t: string) => () => checkUserTpmPolicy(parseTpmPolicy(t))
    expect(check('{"16":"00"}')).toThrow(problem('data-pcr'))
    expect(check('{"10":"00"}')).toThrow(problem('ima-pcr'))
    expect(check('{"24":"00"}')).toThrow(problem('pcr'))
    expect(check('{"16":"00"}')).toThrow(
      'Invalid allowlist PCR number 16, keylime uses this PCR to bind data.',
    )
    expect(check('{"10":"00"}')).toThrow(
      'Invalid allowlist PCR number 10, this PCR is used for IMA.',
    )
  })

  test('every other PCR 0–23 passes', () => {
    for (let n = 0; n < 24; n++)
      if (n !== 10 && n !== 16) checkUserTpmPolicy(parseTpmPolicy({ [n]: '00' }))
  })
})
