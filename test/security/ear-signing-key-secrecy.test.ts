/**
 * The EAR signing key stays secret: over a verifier's start (which creates it), JWKS and EAR
 * requests, a rotation picked up at run time and a key file that does not load, no log line
 * and no answer carries the private key (its PEM body or its JWK `d`); the JWKS holds public
 * members only.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createPrivateKey } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import { getLogger, type LogSink, setLogSink } from '../../src/log/logger.ts'
import { earKeyDir, rotateEarKey } from '../../src/verifier/results/ear-keys.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { databaseTargets } from '../support/databases.ts'
import { createTestCa, startTestVerifier, type TestCa } from '../support/verifier-harness.ts'

const [pglite] = databaseTargets()

describe('EAR signing key secrecy', () => {
  const lines: string[] = []
  let previous: LogSink
  let kdb: KeylimeDatabase
  let ca: TestCa
  let v: VerifierHandle
  const answers: string[] = []

  beforeAll(async () => {
    previous = setLogSink((l) => lines.push(l))
    getLogger().info('capturing')
    ca = await createTestCa()
    kdb = await pglite!.open()
    v = await startTestVerifier(kdb, ca)
  })

  afterAll(async () => {
    await v?.stop(100)
    await kdb?.close()
    setLogSink(previous)
  })

  /** Every private key under ear_keys/: its PEM body lines and its JWK `d`. */
  const secrets = () => {
    const dir = earKeyDir(ca.keylimeDir)
    return readdirSync(dir).flatMap((f) => {
      const pem = readFileSync(join(dir, f), 'utf8')
      if (!pem.includes('PRIVATE KEY')) return []
      const d = createPrivateKey(pem).export({ format: 'jwk' }).d as string
      const body = pem.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----'))
      return [d, ...body]
    })
  }

  test('no log line or answer holds a private key', async () => {
    const call = async (path: string) => answers.push(await (await v.app.request(path)).text())
    await call('/.well-known/jwks.json')
    await rotateEarKey(earKeyDir(ca.keylimeDir))
    writeFileSync(
      join(earKeyDir(ca.keylimeDir), 'ear-es256-29990101T000000000Z-00000000.pem'),
      'junk',
    )
    await Bun.sleep(1100)
    await call('/.well-known/jwks.json')
    await call('/v2.6/agents/d432fbb3-d2f1-4a97-9ef7-75bd81c00000/ear')
    const jwks = JSON.parse(answers[1]!) as { keys: Record<string, unknown>[] }
    expect(jwks.keys).toHaveLength(2)
    for (const k of jwks.keys) {
      expect(Object.keys(k).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
    }
    expect(lines.some((l) => l.includes('EAR signing key files not loaded'))).toBe(true)
    const s = secrets()
    expect(s.length).toBeGreaterThan(4)
    for (const text of [...lines, ...answers]) {
      for (const secret of s) expect(text.includes(secret)).toBe(false)
    }
  })
})
