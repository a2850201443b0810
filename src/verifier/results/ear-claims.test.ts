import { describe, expect, test } from 'bun:test'
import { isKeylimeError } from '../../errors.ts'
import {
  appraisal,
  capStatus,
  checkEarNonce,
  EAR_PROFILE,
  earClaims,
  tierOf,
  VERIFIER_ID,
} from './ear-claims.ts'
import pkg from '../../../package.json' with { type: 'json' }

describe('tiers (AR4SI §3.2)', () => {
  test('claim values fall in their tier', () => {
    expect([-1, 0, 1].map(tierOf)).toEqual(['none', 'none', 'none'])
    expect([2, 3, 31].map(tierOf)).toEqual(['affirming', 'affirming', 'affirming'])
    expect([32, 33, 95].map(tierOf)).toEqual(['warning', 'warning', 'warning'])
    expect([96, 97, 99].map(tierOf)).toEqual([
      'contraindicated',
      'contraindicated',
      'contraindicated',
    ])
  })

  test('a status is never more trusted than its worst claim', () => {
    expect(capStatus('affirming', { hardware: 2, executables: 96 })).toBe('contraindicated')
    expect(capStatus('affirming', { configuration: 32 })).toBe('warning')
    expect(capStatus('warning', { hardware: 2 })).toBe('warning')
    // "no claim" values do not lower a status
    expect(capStatus('affirming', { hardware: 0 })).toBe('affirming')
  })

  test('an empty vector is left out (the draft requires a non-empty map)', () => {
    expect(appraisal('none', {})).toEqual({ ear_status: 'none' })
    expect(appraisal('affirming', { hardware: 2 })).toEqual({
      ear_status: 'affirming',
      ear_trustworthiness_vector: { hardware: 2 },
    })
  })
})

describe('checkEarNonce (8 to 64 bytes, base64 text)', () => {
  const refused = (n: string) => {
    try {
      checkEarNonce(n)
      return undefined
    } catch (err) {
      return isKeylimeError(err) ? [err.status, err.code] : err
    }
  }

  test('accepts base64 and base64url of 8 to 64 bytes, echoed as given', () => {
    const eight = Buffer.alloc(8, 0xfb).toString('base64url')
    expect(checkEarNonce(eight)).toBe(eight)
    expect(checkEarNonce(Buffer.alloc(8, 0xfb).toString('base64'))).toBe('+/v7+/v7+/s=')
    const max = Buffer.alloc(64, 0xff).toString('base64url')
    expect(checkEarNonce(max)).toBe(max)
  })

  test('refuses too short, too long and non-base64 text with a 400', () => {
    expect(refused(Buffer.alloc(7).toString('base64url'))).toEqual([400, 'ERR_EAR_NONCE'])
    expect(refused(Buffer.alloc(65).toString('base64url'))).toEqual([400, 'ERR_EAR_NONCE'])
    expect(refused('not a nonce, has spaces')).toEqual([400, 'ERR_EAR_NONCE'])
    expect(refused('')).toEqual([400, 'ERR_EAR_NONCE'])
    expect(refused('A'.repeat(100_000))).toEqual([400, 'ERR_EAR_NONCE'])
  })
})

describe('earClaims', () => {
  test('draft-04 claim names, the profile, the verifier id and the nonce', () => {
    const claims = earClaims({
      submods: { a: { ear_status: 'affirming', ear_trustworthiness_vector: { hardware: 2 } } },
      iat: 1_700_000_000,
      nonce: 'AAAAAAAAAAA',
    })
    expect(claims).toEqual({
      eat_profile: 'tag:ietf.org,2026:rats/ear#04',
      iat: 1_700_000_000,
      ear_verifier_id: {
        developer: 'https://github.com/keylime-ts',
        build: `keylime-ts ${pkg.version}`,
      },
      ear_status: 'affirming',
      submods: { a: { ear_status: 'affirming', ear_trustworthiness_vector: { hardware: 2 } } },
      eat_nonce: 'AAAAAAAAAAA',
    })
    expect(claims.eat_profile).toBe(EAR_PROFILE)
    expect(claims.ear_verifier_id).toBe(VERIFIER_ID)
  })

  test('the top-level status is the worst of the submods; no nonce, no eat_nonce', () => {
    const claims = earClaims({
      submods: { a: { ear_status: 'affirming' }, b: { ear_status: 'contraindicated' } },
      iat: 1,
    })
    expect(claims.ear_status).toBe('contraindicated')
    expect('eat_nonce' in claims).toBe(false)
  })
})
