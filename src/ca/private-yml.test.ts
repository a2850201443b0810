import { describe, expect, test } from 'bun:test'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CaError } from './errors.ts'
import { emptyPrivateData, sealPrivateYml, unsealPrivateYml } from './private-yml.ts'
import { parseYamlSubset } from './yaml-subset.ts'

const KEY =
  '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n'

function sample() {
  const d = emptyPrivateData()
  d.ca = KEY
  d.lastserial = 3
  d.revokedKeys = ['2']
  d.revocationDates = { '2': '2026-02-03T04:05:06.000Z' }
  d.keys.server = 'SERVER KEY PEM'
  return d
}

const py = Bun.which('python3')
const hasPyCrypto =
  py !== null && Bun.spawnSync([py, '-c', 'import cryptography, yaml']).exitCode === 0
if (!hasPyCrypto)
  console.log('skipping Python interop test: python3 with cryptography and PyYAML not available')

describe('private.yml', () => {
  test('seals to {priv, salt} and unseals with the right password', async () => {
    const text = await sealPrivateYml(sample(), 'pw')
    const outer = parseYamlSubset(text)
    expect(Object.keys(outer).sort()).toEqual(['priv', 'salt'])
    expect(text).not.toContain('PRIVATE KEY')
    expect(text).not.toContain('MIIEvQIBADANBgkqhkiG9w0BAQEFAASC')
    const { data, salt } = await unsealPrivateYml(text, 'pw')
    expect(salt).toBe(outer.salt as string)
    expect(data).toEqual(sample())
  })

  test('keeps the salt when re-sealed with it', async () => {
    const first = await unsealPrivateYml(await sealPrivateYml(sample(), 'pw'), 'pw')
    const again = await unsealPrivateYml(await sealPrivateYml(first.data, 'pw', first.salt), 'pw')
    expect(again.salt).toBe(first.salt)
  })

  test('a wrong password is ERR_CA_BAD_PASSWORD', async () => {
    const text = await sealPrivateYml(sample(), 'pw')
    const err = await unsealPrivateYml(text, 'nope').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(CaError)
    expect((err as CaError).code).toBe('ERR_CA_BAD_PASSWORD')
    expect((err as CaError).message).not.toContain('nope')
  })

  test('a tampered ciphertext is rejected, not decrypted', async () => {
    const text = await sealPrivateYml(sample(), 'pw')
    const outer = parseYamlSubset(text)
    const b64 = Buffer.from(outer.priv as Uint8Array).toString()
    const raw = Buffer.from(b64, 'base64')
    raw[20] = (raw[20] ?? 0) ^ 1
    const tampered = text.replace(
      /priv: !!binary \|\n( {2}.*\n)+/,
      `priv: !!binary ${Buffer.from(raw.toString('base64')).toString('base64')}\n`,
    )
    const err = await unsealPrivateYml(tampered, 'pw').catch((e: unknown) => e)
    expect((err as CaError).code).toBe('ERR_CA_BAD_PASSWORD')
  })

  test('garbage is ERR_CA_MALFORMED', async () => {
    const err = await unsealPrivateYml('hello: world\n', 'pw').catch((e: unknown) => e)
    expect((err as CaError).code).toBe('ERR_CA_MALFORMED')
  })

  test.skipIf(!hasPyCrypto)(
    'is readable and writable by upstream-style Python (PBKDF2 + AES-GCM + PyYAML)',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ca-py-'))
      const file = join(dir, 'private.yml')
      writeFileSync(file, await sealPrivateYml(sample(), 'pw'))
      // Independent reimplementation of upstream's read_private/write_private (keylime/crypto.py kdf/encrypt).
      const script = `
import sys, yaml, base64, os
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
f = sys.argv[1]
t = yaml.safe_load(open(f))
kdf = lambda: PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=t['salt'].encode(), iterations=100000).derive(b'pw')
ct = base64.b64decode(t['priv'])
d = Cipher(algorithms.AES(kdf()), modes.GCM(ct[:16], ct[-16:])).decryptor()
priv = yaml.safe_load(d.update(ct[16:-16]) + d.finalize())
assert priv['lastserial'] == 3 and priv['revoked_keys'] == ['2'] and priv['server'] == b'SERVER KEY PEM'
priv['lastserial'] += 1
priv['revoked_keys'].append('3')
priv['py'] = b'PY KEY'
iv = os.urandom(16)
e = Cipher(algorithms.AES(kdf()), modes.GCM(iv)).encryptor()
c = e.update(yaml.safe_dump(priv).encode()) + e.finalize()
yaml.safe_dump({'salt': t['salt'], 'priv': base64.b64encode(iv + c + e.tag)}, open(f, 'w'))
`
      const r = Bun.spawnSync([py as string, '-c', script, file])
      expect(r.stderr.toString()).toBe('')
      expect(r.exitCode).toBe(0)
      const { data } = await unsealPrivateYml(await Bun.file(file).text(), 'pw')
      expect(data.lastserial).toBe(4)
      expect(data.revokedKeys).toEqual(['2', '3'])
      expect(data.keys.py).toBe('PY KEY')
      expect(data.ca).toBe(KEY)
    },
  )
})
