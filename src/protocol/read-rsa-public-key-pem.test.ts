import { describe, expect, test } from 'bun:test'
import { generateKeyPairSync } from 'node:crypto'
import { fuzzParser } from '../../test/support/fuzz/fuzz-parser.ts'
import { ProtocolError } from './errors.ts'
import { readPemBlock } from './read-pem-block.ts'
import { MAX_PUBLIC_KEY_PEM, readRsaPublicKeyPem } from './read-rsa-public-key-pem.ts'

const spki = (k: { publicKey: import('node:crypto').KeyObject }) =>
  String(k.publicKey.export({ type: 'spki', format: 'pem' }))
/** An NK as rust-keylime sends it (`public_key_to_pem`: SPKI, 64-column lines, final newline). */
const NK = spki(generateKeyPairSync('rsa', { modulusLength: 2048 }))
const body = NK.split('\n').slice(1, -2)

function codeOf(text: unknown): string {
  try {
    readRsaPublicKeyPem(text)
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError)
    return (e as ProtocolError).code
  }
  return 'accepted'
}

describe('readRsaPublicKeyPem', () => {
  test('accepts what agents send, with CRLF line ends and whitespace around', () => {
    expect(readRsaPublicKeyPem(NK).asymmetricKeyDetails?.modulusLength).toBe(2048)
    expect(codeOf(NK.replaceAll('\n', '\r\n'))).toBe('accepted')
    expect(codeOf(`\n  ${NK}\n\t\n`)).toBe('accepted')
    expect(codeOf(`-----BEGIN PUBLIC KEY-----\n${body.join('')}\n-----END PUBLIC KEY-----`)).toBe(
      'accepted',
    )
    const big = spki(generateKeyPairSync('rsa', { modulusLength: 3072, publicExponent: 3 }))
    expect(codeOf(big)).toBe('accepted')
  })

  test.each([
    ['junk before the block', `junk\n${NK}`, 'ERR_PEM_FORMAT'],
    ['junk after the block', `${NK}junk\n`, 'ERR_PEM_FORMAT'],
    [
      'megabytes of junk around it',
      `${'x'.repeat(2 ** 20)}\n${NK}\n${'y'.repeat(2 ** 20)}`,
      'ERR_PEM_TOO_LARGE',
    ],
    ['two blocks', `${NK}${NK}`, 'ERR_PEM_FORMAT'],
    ['a PKCS#1 label', NK.replaceAll('PUBLIC KEY', 'RSA PUBLIC KEY'), 'ERR_PEM_FORMAT'],
    ['a certificate label', NK.replaceAll('PUBLIC KEY', 'CERTIFICATE'), 'ERR_PEM_FORMAT'],
    ['mismatched END', NK.replace('END PUBLIC KEY', 'END PRIVATE KEY'), 'ERR_PEM_FORMAT'],
    ['spaces in a line', NK.replace(body[1] as string, ` ${body[1]}`), 'ERR_PEM_FORMAT'],
    ['a header line', NK.replace('\n', '\nProc-Type: 4,ENCRYPTED\n'), 'ERR_PEM_FORMAT'],
    ['an empty line inside', NK.replace(`${body[0]}\n`, `${body[0]}\n\n`), 'ERR_PEM_FORMAT'],
    ['no body', '-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n', 'ERR_PEM_FORMAT'],
    ['URL-safe alphabet', NK.replace(/[+/]/, '-'), 'ERR_PEM_FORMAT'],
    ['bad padding', NK.replace(/=*\n-----END/, 'A=\n-----END'), 'ERR_PEM_BASE64'],
    [
      'non-canonical trailing bits',
      '-----BEGIN PUBLIC KEY-----\nQUJ=\n-----END PUBLIC KEY-----',
      'ERR_PEM_BASE64',
    ],
    [
      'not a key inside',
      '-----BEGIN PUBLIC KEY-----\nQUJD\n-----END PUBLIC KEY-----',
      'ERR_PEM_CONTENT',
    ],
    ['not a string', 42, 'ERR_PEM_FORMAT'],
    ['an EC key', spki(generateKeyPairSync('ec', { namedCurve: 'P-256' })), 'ERR_KEY_UNSUPPORTED'],
    [
      'a 1024-bit key',
      spki(generateKeyPairSync('rsa', { modulusLength: 1024 })),
      'ERR_KEY_UNSUPPORTED',
    ],
  ])('refuses %s', (_name, text, code) => {
    expect(codeOf(text)).toBe(code)
  })

  test('DER with a byte after the key is not canonical', () => {
    const der = Buffer.concat([Buffer.from(body.join(''), 'base64'), Buffer.from([0])])
    const pem = `-----BEGIN PUBLIC KEY-----\n${der.toString('base64')}\n-----END PUBLIC KEY-----\n`
    expect(['ERR_PEM_CONTENT']).toContain(codeOf(pem))
  })

  test('the size cap holds whatever the content', () => {
    expect(codeOf(`${NK}${' '.repeat(MAX_PUBLIC_KEY_PEM)}`)).toBe('ERR_PEM_TOO_LARGE')
    expect(() => readPemBlock(NK, ['PUBLIC KEY'], 100)).toThrow(ProtocolError)
  })

  test('fuzz: 3000 mutated PEMs are accepted or refused with a ProtocolError', () => {
    const seed = new TextEncoder().encode(NK)
    const r = fuzzParser(
      'NK PEM',
      [seed],
      (b) => readRsaPublicKeyPem(new TextDecoder().decode(b)),
      {
        cases: 3000,
        seed: 20260802,
        isTypedError: (e) => e instanceof ProtocolError,
      },
    )
    expect(r.failures).toEqual([])
    expect(r.rejected).toBeGreaterThan(2000)
  })
})
