/**
 * Live check against a fresh swtpm: tpm2-tools makes an AK and a quote, verifyQuote checks it
 * in-process. Skipped (with the reason printed) when swtpm or tpm2-tools are not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { isTpmError } from './errors.ts'
import { checkNkBinding } from './extend-pcr.ts'
import { computeName, parseTpm2bPublic } from './public-area.ts'
import { serializeQuoteString } from './quote-string.ts'
import { verifyQuote } from './verify-quote.ts'
import { type BareSwtpm, startBareSwtpm } from '../../test/support/swtpm.ts'

const TOOLS = [
  'swtpm',
  'tpm2_createek',
  'tpm2_createak',
  'tpm2_quote',
  'tpm2_pcrextend',
  'tpm2_flushcontext',
]
const missing = TOOLS.filter((t) => Bun.which(t) === null)
const hasSwtpm = missing.length === 0
if (!hasSwtpm) console.log(`skipping live swtpm quote test: missing ${missing.join(', ')}`)

describe.skipIf(!hasSwtpm)('live swtpm + tpm2-tools quote', () => {
  let swtpm: BareSwtpm | undefined
  let env: Record<string, string> = {}

  function run(...argv: string[]): void {
    const r = Bun.spawnSync(argv, {
      env: { ...process.env, ...env },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    if (r.exitCode !== 0) throw new Error(`${argv[0]} failed: ${r.stderr.toString()}`)
  }
  const flush = (): void => {
    run('tpm2_flushcontext', '-t')
    run('tpm2_flushcontext', '-s')
  }

  beforeAll(async () => {
    swtpm = await startBareSwtpm()
    env = { TPM2TOOLS_TCTI: swtpm.tcti }
  })

  afterAll(async () => {
    await swtpm?.remove()
  })

  for (const [keyAlg, signAlg] of [
    ['rsa', 'rsassa'],
    ['ecc', 'ecdsa'],
  ] as const) {
    test(`${keyAlg}/${signAlg}: fresh AK quote verifies in-process; wrong nonce does not`, () => {
      const f = (n: string): string => join((swtpm as BareSwtpm).dir, `${keyAlg}.${n}`)
      const pem = '-----BEGIN PUBLIC KEY-----\nlive test\n-----END PUBLIC KEY-----\n'
      run('tpm2_pcrreset', '16')
      const h = new Bun.CryptoHasher('sha256').update(pem).digest('hex')
      run('tpm2_pcrextend', `16:sha256=${h}`)
      run('tpm2_createek', '-c', f('ek.ctx'), '-G', 'rsa', '-u', f('ek.pub'))
      flush()
      run(
        'tpm2_createak',
        '-C',
        f('ek.ctx'),
        '-c',
        f('ak.ctx'),
        '-G',
        keyAlg,
        '-g',
        'sha256',
        '-s',
        signAlg,
        '-u',
        f('ak.pub'),
        '-n',
        f('ak.name'),
      )
      flush()
      const nonce = `live${Date.now()}`
      run(
        'tpm2_quote',
        '-c',
        f('ak.ctx'),
        '-l',
        'sha256:0,10,16',
        '-q',
        Buffer.from(nonce).toString('hex'),
        '-g',
        'sha256',
        '--scheme',
        signAlg,
        '-m',
        f('msg'),
        '-s',
        f('sig'),
        '-f',
        'tss',
        '-o',
        f('pcr'),
        '-F',
        'serialized',
      )
      flush()
      const ak = parseTpm2bPublic(readFileSync(f('ak.pub')))
      expect(Buffer.from(computeName(ak))).toEqual(readFileSync(f('ak.name')))
      const quote = serializeQuoteString({
        attest: readFileSync(f('msg')),
        signature: readFileSync(f('sig')),
        pcrBlob: readFileSync(f('pcr')),
      })
      const r = verifyQuote({ quote, akPublic: ak, nonce, hashAlg: 'sha256', signAlg })
      expect([...(r.pcrs.get('sha256')?.keys() ?? [])]).toEqual([0, 10, 16])
      checkNkBinding(r.pcrs, 'sha256', pem)
      try {
        verifyQuote({ quote, akPublic: ak, nonce: `${nonce}x`, hashAlg: 'sha256' })
        throw new Error('accepted a wrong nonce')
      } catch (e) {
        expect(isTpmError(e, 'ERR_QUOTE_NONCE')).toBe(true)
      }
    })
  }
})
