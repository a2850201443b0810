/**
 * Unit tests of the tenant's pure parts: argument parsing (aliases, defaults, conflicts), the
 * tpm_policy/mask rules, the key-file format and the payload crypto (checked against an
 * independent decryption and HMAC).
 */
import { describe, expect, test } from 'bun:test'
import {
  createDecipheriv,
  createHmac,
  generateKeyPairSync,
  privateDecrypt,
  constants,
} from 'node:crypto'
import { TenantError } from './errors.ts'
import { tpmPolicyToJson } from '../protocol/tpm-policy.ts'
import { readTpmPolicyOption } from './build-policies.ts'
import { parseKeyFile } from './add-agent.ts'
import { DEFAULT_AGENT_UUID, parseTenantArgs } from './parse-tenant-args.ts'
import {
  authTag,
  checkKeyHmac,
  encryptPayload,
  encryptToNk,
  generatePayloadKeys,
  xorBytes,
} from './payload-keys.ts'
import { pyJson } from './tenant-output.ts'
import {
  acceptAttestationsBody,
  isPushAgent,
  PUSH_STATE_TEXT,
  withStateName,
} from './verifier-commands.ts'

function exitOf(fn: () => unknown): number {
  try {
    fn()
  } catch (e) {
    if (e instanceof TenantError) return e.exitCode
    throw e
  }
  return 0
}

describe('parseTenantArgs', () => {
  test('defaults: command add, upstream default UUID', () => {
    const o = parseTenantArgs([])
    expect(o.command).toBe('add')
    expect(o.agentUuid).toBe(DEFAULT_AGENT_UUID)
    expect(o.defaultUuid).toBe(true)
    expect(o.verifierCheck).toBe(true)
  })

  test('multi-letter single-dash flags and deprecated spellings map to their long forms', () => {
    const o = parseTenantArgs([
      '-c',
      'delete',
      '-tp',
      '9002',
      '-vp',
      '8881',
      '-vi',
      'v1',
      '-rp',
      '8891',
      '-nvc',
      '-v',
      '10.0.0.1',
      '-t',
      '10.0.0.2',
      '-r',
      '10.0.0.3',
      '--mb_refstate',
      'mb.json',
      '--supported-version',
      '2.1',
      '-tp=9003',
    ])
    expect(o).toMatchObject({
      command: 'delete',
      agentPort: 9003,
      verifierPort: 8881,
      verifierId: 'v1',
      registrarPort: 8891,
      verifierCheck: false,
      verifierIp: '10.0.0.1',
      agentIp: '10.0.0.2',
      registrarIp: '10.0.0.3',
      mbPolicy: 'mb.json',
      agentApiVersion: '2.1',
    })
    expect(o.warnings.join()).toContain('--supported-version is deprecated')
  })

  test('usage errors exit 2', () => {
    for (const args of [
      ['-u', 'a b'],
      ['-c', 'nope'],
      ['--bogus'],
      ['-tp', 'x'],
      ['-f', 'a', '-k', 'b'],
      ['-p', 'payload'],
      ['--exclude', 'e'],
      ['--runtime-policy', 'a', '--runtime-policy-url', 'http://x'],
      ['--runtime-policy-checksum', 'ab'],
      ['--verify', '--push-model', '-f', 'a'],
      ['--signature-verification-key-url', 'http://x'],
    ])
      expect({ args, code: exitOf(() => parseTenantArgs(args)) }).toEqual({ args, code: 2 })
  })
})

describe('readTpmPolicyOption', () => {
  test('mask from the keys, singletons wrapped, digests lower-cased', () => {
    const p = tpmPolicyToJson(readTpmPolicyOption('{"15":"AB", "0":["01","02"]}'))
    expect(p).toEqual({ '15': ['ab'], '0': ['01', '02'], mask: '0x8001' })
    expect(tpmPolicyToJson(readTpmPolicyOption(undefined))).toEqual({ mask: '0x0' })
    expect(tpmPolicyToJson(readTpmPolicyOption('{"1":"aa","mask":"0xffff"}'))).toEqual({
      '1': ['aa'],
      mask: '0x2',
    })
  })

  test('PCR 10 and 16, PCRs above 23 and non-hex digests are refused', () => {
    for (const t of [
      '{"10":"00"}',
      '{"16":"00"}',
      '{"24":"00"}',
      '{"1":"xyz"}',
      '[1]',
      '{',
      '',
      'null',
    ])
      expect(exitOf(() => readTpmPolicyOption(t))).toBe(2)
  })
})

describe('keys and payload', () => {
  test('U = K xor V, and the payload decrypts independently with K (iv16 ‖ ct ‖ tag16)', () => {
    const keys = generatePayloadKeys()
    expect(xorBytes(keys.u, keys.v).equals(keys.k)).toBe(true)
    const plain = Buffer.from('hello payload')
    const blob = Buffer.from(encryptPayload(keys.k, plain), 'base64')
    const d = createDecipheriv('aes-256-gcm', keys.k, blob.subarray(0, 16))
    d.setAuthTag(blob.subarray(blob.length - 16))
    expect(Buffer.concat([d.update(blob.subarray(16, blob.length - 16)), d.final()])).toEqual(plain)
  })

  test('auth_tag and key check are HMAC-SHA384 hex; a wrong HMAC is refused', () => {
    const k = Buffer.alloc(32, 1)
    expect(authTag(k, 'agent')).toBe(createHmac('sha384', k).update('agent').digest('hex'))
    const good = createHmac('sha384', k).update('chal').digest('hex')
    expect(checkKeyHmac(k, 'chal', good)).toBe(true)
    const flipped = `${good.slice(0, -1)}${good.endsWith('0') ? '1' : '0'}`
    expect(checkKeyHmac(k, 'chal', flipped)).toBe(false)
    expect(checkKeyHmac(k, 'chal', undefined)).toBe(false)
  })

  test('U is RSA-OAEP-SHA1 encrypted to the NK', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const u = Buffer.alloc(32, 9)
    const enc = encryptToNk(publicKey.export({ type: 'spki', format: 'pem' }).toString(), u)
    const dec = privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
      Buffer.from(enc, 'base64'),
    )
    expect(dec).toEqual(u)
  })

  test('key file: K, U, V lines (userdata_encrypt writes k, v, u — both combine)', () => {
    const keys = generatePayloadKeys()
    const b = (x: Buffer) => x.toString('base64')
    expect(parseKeyFile(`${b(keys.k)}\n${b(keys.v)}\n${b(keys.u)}\n`, 'f').k).toEqual(keys.k)
    expect(exitOf(() => parseKeyFile(`${b(keys.k)}\n${b(keys.k)}\n${b(keys.u)}\n`, 'f'))).toBe(6)
    expect(exitOf(() => parseKeyFile('short\n', 'f'))).toBe(6)
  })
})

test('pyJson matches Python json.dumps separators', () => {
  expect(pyJson({ uuids: ['a', 'b'], n: 1, x: null })).toBe(
    '{"uuids": ["a", "b"], "n": 1, "x": null}',
  )
})

test('--include: a directory adds its files, a .zip merges its entries, a missing path exits 6', async () => {
  const { mkdtempSync, writeFileSync, mkdirSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { zipSync } = await import('fflate')
  const { readIncludes } = await import('./cert-package.ts')
  const dir = mkdtempSync(join(tmpdir(), 'kl-inc-'))
  mkdirSync(join(dir, 'd'))
  writeFileSync(join(dir, 'd', 'autorun.sh'), 'echo hi')
  mkdirSync(join(dir, 'd', 'sub'))
  expect(Object.keys(readIncludes(join(dir, 'd')))).toEqual(['autorun.sh'])
  writeFileSync(join(dir, 'payload.zip'), zipSync({ 'a.txt': new TextEncoder().encode('A') }))
  expect(new TextDecoder().decode(readIncludes(join(dir, 'payload.zip'))['a.txt'])).toBe('A')
  expect(exitOf(() => readIncludes(join(dir, 'missing')))).toBe(6)
})

test('--include x.zip: unsafe or colliding archives exit 6 with the reason (finding 11)', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { buildZip } = await import('../../test/support/zip-builder.ts')
  const { readIncludes } = await import('./cert-package.ts')
  const dir = mkdtempSync(join(tmpdir(), 'kl-inc-'))
  const cases: Array<[Parameters<typeof buildZip>, string]> = [
    [[[{ name: 'a' }, { name: 'a/b' }]], 'both a file and a directory'],
    [[[{ name: '../escape' }]], 'segment'],
    [[[{ name: 'l', externalAttr: 0o120777 * 65536 }]], 'symlink'],
    [[[{ name: 'a' }], { zip64: { count: 65_535 } }], 'entries'],
  ]
  for (const [args, reason] of cases) {
    writeFileSync(join(dir, 'bad.zip'), buildZip(...args))
    let message = ''
    const code = exitOf(() => {
      try {
        readIncludes(join(dir, 'bad.zip'))
      } catch (e) {
        message = (e as Error).message
        throw e
      }
    })
    expect(code).toBe(6)
    expect(message).toContain(reason)
  }
})

describe('push agents in the verifier status', () => {
  test('isPushAgent follows upstream is_push_mode_agent: null state, or neither ip nor port', () => {
    expect(isPushAgent({ operational_state: 3, ip: null, port: null })).toBe(true) // 7.14 push
    expect(isPushAgent({ operational_state: null, ip: '10.0.0.1', port: 9002 })).toBe(true)
    expect(isPushAgent({ operational_state: 3, ip: '10.0.0.1', port: 9002 })).toBe(false)
    expect(isPushAgent({ operational_state: 7, ip: '10.0.0.1', port: null })).toBe(false)
  })

  test('withStateName: named state; dropped with --push-model; null kept (cvstatus) or named (bulkinfo)', () => {
    const st = { operational_state: 3, attestation_status: 'PASS' }
    expect(withStateName(st, false)).toEqual({
      operational_state: 'Get Quote',
      attestation_status: 'PASS',
    })
    expect(withStateName(st, true)).toEqual({ attestation_status: 'PASS' })
    const push = { operational_state: null, attestation_status: 'TIMEOUT' }
    expect(withStateName(push, false)).toEqual(push)
    expect(withStateName(push, false, PUSH_STATE_TEXT).operational_state).toBe(
      'Not applicable (Push Mode)',
    )
  })

  test('the v3 body that re-enables attestations is a JSON:API agent resource', () => {
    expect(acceptAttestationsBody('a1')).toEqual({
      data: { type: 'agent', id: 'a1', attributes: { accept_attestations: true } },
    })
  })
})
