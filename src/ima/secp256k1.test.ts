import { describe, expect, test } from 'bun:test'
import { generateKeyPairSync } from 'node:crypto'
import { ImaKeyring, keyIdV2, verifyImaSignature } from './ima-keyring.ts'
import { parseSecp256k1Pem, parseSecp256k1Spki, Secp256k1PublicKey } from './secp256k1.ts'

/**
 * source: generated with Python `cryptography` 48.0.0 (OpenSSL 3.0.22), as upstream signs and
 * verifies: `ec.derive_private_key(0x1234567890abcdef…(×4), ec.SECP256K1())`, signature
 * `priv.sign(sha256(b'/usr/bin/k1-signed'), ec.ECDSA(Prehashed(SHA256())))` in a
 * `signature_v2_hdr` (type 3, version 2, hash_algo 4 = sha256).
 */
const K1 = {
  spki: 'MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEu1Di2JpO1wZj0IBln+CtS5vD4GwXoidDOWbLWc7uAg3s3b9uABkgEWSNE7HACvdwwMG7YJ1NOlyYpDdy4OGO9A==',
  pointCompressed: '02bb50e2d89a4ed70663d080659fe0ad4b9bc3e06c17a227433966cb59ceee020d',
  keyid: 974395633,
  digest: '92cb56dee51036a0b9f8d4d6e6f2f617115034bc7c507e2f717185a538fc0934',
  imasig:
    '0302043a1418f1004730450221009e42192aa8bbc0d854641731a964db076e8c77806df5c8889b9cc64d6490504a02207f0f3bfd4a4d16311746e368b62caa341b61ebc6c3ae6a6bcbf61b5b49c58a4c',
}

const spki = Buffer.from(K1.spki, 'base64')
const sig = Buffer.from(K1.imasig, 'hex')
const digest = Buffer.from(K1.digest, 'hex')

describe('secp256k1 IMA keys', () => {
  test('decodes uncompressed and compressed SPKI to the same point and keyidv2', () => {
    const k = parseSecp256k1Spki(spki)
    expect(k).toBeInstanceOf(Secp256k1PublicKey)
    expect(k?.keyIdV2()).toBe(K1.keyid)
    expect(k?.spki().equals(spki)).toBe(true)
    const alg = spki.subarray(2, 20)
    const pt = Buffer.from(K1.pointCompressed, 'hex')
    const compressed = Buffer.concat([
      Buffer.from([0x30, 0x36]),
      alg,
      Buffer.from([0x03, 0x22, 0x00]),
      pt,
    ])
    const c = parseSecp256k1Spki(compressed)
    expect(c?.x).toBe(k?.x as bigint)
    expect(c?.y).toBe(k?.y as bigint)
    const pem = `-----BEGIN PUBLIC KEY-----\n${K1.spki}\n-----END PUBLIC KEY-----\n`
    expect(parseSecp256k1Pem(pem)?.keyIdV2()).toBe(K1.keyid)
  })

  test('rejects other curves, points off the curve and trailing bytes', () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey
    expect(parseSecp256k1Spki(p256.export({ type: 'spki', format: 'der' }))).toBeNull()
    const off = Buffer.from(spki)
    off[off.length - 1] = (off[off.length - 1] as number) ^ 1
    expect(parseSecp256k1Spki(off)).toBeNull()
    expect(parseSecp256k1Spki(Buffer.concat([spki, Buffer.from([0])]))).toBeNull()
  })

  test('a policy keyring holds the key and verifies its ima-sig signature', () => {
    const ring = ImaKeyring.fromJSON({ keyids: [K1.keyid], pubkeys: [K1.spki] })
    expect(ring.skipped).toEqual([])
    const key = ring.get(K1.keyid)
    expect(key).toBeInstanceOf(Secp256k1PublicKey)
    expect(keyIdV2(key as Secp256k1PublicKey)).toBe(K1.keyid)
    expect(verifyImaSignature([ring], sig, digest, 'sha256')).toBe(true)
    const other = Buffer.from(digest)
    other[0] = (other[0] as number) ^ 1
    expect(verifyImaSignature([ring], sig, other, 'sha256')).toBe(false)
    expect(ring.toJSON()).toEqual({ keyids: [K1.keyid], pubkeys: [K1.spki] })
    // keyid 0 / absent: computed from the key, as upstream's add_pubkey does
    expect(ImaKeyring.fromJSON({ keyids: [], pubkeys: [K1.spki] }).get(K1.keyid)).toBeDefined()
  })

  test('keys that do not load are skipped and reported, not dropped silently', () => {
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' })
    const ring = ImaKeyring.fromJSON({
      keyids: [1, 2, K1.keyid],
      pubkeys: [Buffer.from('not a key').toString('base64'), ed.toString('base64'), K1.spki],
    })
    expect([...ring.keys.keys()]).toEqual([K1.keyid])
    expect(ring.skipped.map((e) => [e.code, e.message])).toEqual([
      ['ERR_IMA_KEYRING', 'could not load a base64-decoded DER key'],
      ['ERR_IMA_KEYRING', 'unsupported key type ed25519'],
    ])
  })
})
