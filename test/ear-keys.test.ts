/**
 * The verifier's EAR signing keys and tokens, verified with a standard JOSE library (`jose`),
 * not with our signer: key files 0600 in a 0700 directory, the JWKS and `kid` (RFC 7638
 * thumbprint), rotation with its grace window (a token verifies until its key leaves the JWKS),
 * a running key ring picking up a rotation, and `keylime ear` on the command line.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { main } from '../src/cli/main.ts'
import { EarIssuer } from '../src/verifier/results/ear-issuer.ts'
import {
  EAR_KEYS_KEPT,
  EarKeyRing,
  earKeyDir,
  ensureEarKey,
  loadEarKeys,
  rotateEarKey,
} from '../src/verifier/results/ear-keys.ts'

const root = mkdtempSync(join(tmpdir(), 'kl-ear-keys-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const SUBMODS = { agent: { ear_status: 'affirming' as const } }

/** Verifies `token` against `jwks` with jose; the claims, or the jose error code. */
async function verify(token: string, jwks: Parameters<typeof createLocalJWKSet>[0]) {
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { algorithms: ['ES256'] })
    return payload
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  }
}

describe('EAR signing keys', () => {
  test('the first start creates one P-256 key, 0600 in a 0700 directory; later starts reuse it', async () => {
    const dir = join(root, 'first')
    expect(await ensureEarKey(dir)).toBe(true)
    expect(await ensureEarKey(dir)).toBe(false)
    const files = readdirSync(dir)
    expect(files).toHaveLength(1)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(statSync(join(dir, files[0]!)).mode & 0o777).toBe(0o600)
  })

  test('tokens verify with jose against the JWKS; kid is the RFC 7638 thumbprint', async () => {
    const dir = join(root, 'sign')
    await ensureEarKey(dir)
    const issuer = new EarIssuer(new EarKeyRing(dir))
    const token = await issuer.sign(SUBMODS, 'AAAAAAAAAAAAAAA')
    const jwks = await issuer.jwks()
    expect(jwks.keys).toHaveLength(1)
    const jwk = jwks.keys[0]!
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' })
    expect('d' in jwk).toBe(false)
    expect(decodeProtectedHeader(token)).toEqual({
      alg: 'ES256',
      typ: 'JWT',
      kid: await calculateJwkThumbprint(jwk),
    })
    expect(jwk.kid).toBe(await calculateJwkThumbprint(jwk))
    const claims = await verify(token, jwks)
    expect(claims).toMatchObject({
      eat_profile: 'tag:ietf.org,2026:rats/ear#04',
      eat_nonce: 'AAAAAAAAAAAAAAA',
      submods: SUBMODS,
    })
    // the same signature over other claims does not verify
    const [h, , sig] = token.split('.')
    const other = { ...(claims as object), eat_nonce: 'BBBBBBBBBBBBBBB' }
    const forged = `${h}.${Buffer.from(JSON.stringify(other)).toString('base64url')}.${sig}`
    expect(await verify(forged, jwks)).toBe('ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
  })

  test('rotation: new tokens use the new kid, old ones verify until their key leaves the JWKS', async () => {
    const dir = join(root, 'rotate')
    await ensureEarKey(dir)
    const ring = new EarKeyRing(dir)
    let clock = Date.now()
    const issuer = new EarIssuer(ring, () => clock)
    const old = await issuer.sign(SUBMODS)
    const oldKid = decodeProtectedHeader(old).kid as string
    const rotated = await rotateEarKey(dir)
    clock += 1500 // the running ring looks for a rotation at most once a second
    const fresh = await issuer.sign(SUBMODS)
    expect(decodeProtectedHeader(fresh).kid).toBe(rotated.kid)
    expect(rotated.kid).not.toBe(oldKid)
    const jwks = await issuer.jwks()
    expect(jwks.keys.map((k) => k.kid)).toEqual([rotated.kid, oldKid])
    expect(await verify(old, jwks)).toMatchObject({ submods: SUBMODS })
    expect(await verify(fresh, jwks)).toMatchObject({ submods: SUBMODS })
    // two more rotations: the old key is still the last one kept
    for (let i = 0; i < EAR_KEYS_KEPT - 2; i++) await rotateEarKey(dir)
    expect(await verify(old, (await loadEarKeys(dir)).jwks)).toMatchObject({ submods: SUBMODS })
    // one more: its key (and its private file) are gone, its tokens no longer verify
    const last = await rotateEarKey(dir)
    expect(last.removed).toHaveLength(1)
    expect(readdirSync(dir)).toHaveLength(EAR_KEYS_KEPT)
    expect(await verify(old, (await loadEarKeys(dir)).jwks)).toBe('ERR_JWKS_NO_MATCHING_KEY')
  })

  test('a damaged key file is skipped, never served', async () => {
    const dir = join(root, 'damaged')
    await ensureEarKey(dir)
    const good = (await loadEarKeys(dir)).kid
    writeFileSync(join(dir, 'ear-es256-29990101T000000000Z-00000000.pem'), 'not a key', {
      mode: 0o600,
    })
    const keys = await loadEarKeys(dir)
    expect(keys.kid).toBe(good)
    expect(keys.jwks.keys).toHaveLength(1)
    expect(keys.skipped).toEqual(['ear-es256-29990101T000000000Z-00000000.pem'])
    const told: string[][] = []
    await new EarKeyRing(dir, (files) => told.push(files)).current()
    expect(told).toEqual([keys.skipped])
  })

  test('keylime ear rotate and keylime ear jwks', async () => {
    const keylimeDir = join(root, 'cli')
    const out: string[] = []
    const io = {
      stdout: (s: string) => out.push(s),
      stderr: (s: string) => out.push(s),
      env: { KEYLIME_DIR: keylimeDir },
    }
    expect(await main('keylime', ['ear', 'jwks'], io)).toBe(0)
    const before = JSON.parse(out.join('')) as { keys: { kid: string }[] }
    expect(before.keys).toHaveLength(1)
    out.length = 0
    expect(await main('keylime', ['ear', 'rotate'], io)).toBe(0)
    const kid = /new EAR signing key (\S+)/.exec(out.join(''))?.[1]
    out.length = 0
    expect(await main('keylime', ['ear', 'jwks'], io)).toBe(0)
    const after = JSON.parse(out.join('')) as { keys: { kid: string }[] }
    expect(after.keys.map((k) => k.kid)).toEqual([kid!, before.keys[0]!.kid])
    expect(readdirSync(earKeyDir(keylimeDir))).toHaveLength(2)
    expect(await main('keylime', ['ear', 'bogus'], io)).toBe(2)
  })
})
