/**
 * verifyCertify as the proof of possession uses it (the AK certifies itself over a challenge),
 * with software RSA and ECC AKs; the swtpm-made proofs are in test/push-sessions.test.ts.
 */
import { describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { TPM_ST } from './constants.ts'
import { verifyCertify } from './verify-certify.ts'
import { certifyAttest, makeSoftwareAk, tpmSign } from '../../test/support/software-agent.ts'

const code = (c: string) => expect.objectContaining({ code: c, status: 400 })

for (const kind of ['rsa', 'ecc'] as const) {
  describe(`verifyCertify (${kind} AK certifying itself)`, () => {
    const ak = makeSoftwareAk(kind)
    const other = makeSoftwareAk(kind)
    const challenge = randomBytes(16)
    const pop =
      (attest: Uint8Array, signature = tpmSign(ak, attest), signer = ak.pub) =>
      () =>
        verifyCertify({ attest, signature, signer, certified: ak.pub, qualifyingData: challenge })

    test('a proof over the challenge verifies, with SHA-256/384/512 (and RSAPSS for RSA)', () => {
      const attest = certifyAttest(ak, challenge)
      expect(pop(attest)).not.toThrow()
      expect(pop(attest, tpmSign(ak, attest, { hash: 'sha384' }))).not.toThrow()
      expect(pop(attest, tpmSign(ak, attest, { hash: 'sha512' }))).not.toThrow()
      if (kind === 'rsa') expect(pop(attest, tpmSign(ak, attest, { pss: true }))).not.toThrow()
    })

    test('each wrong part fails with its own code', () => {
      const attest = certifyAttest(ak, challenge)
      expect(pop(certifyAttest(ak, randomBytes(16)))).toThrow(code('ERR_QUOTE_NONCE'))
      expect(pop(certifyAttest(other, challenge))).toThrow(code('ERR_CERTIFY_NAME'))
      expect(pop(certifyAttest(ak, challenge, TPM_ST.ATTEST_QUOTE))).toThrow(code('ERR_QUOTE_TYPE'))
      expect(pop(attest, tpmSign(other, attest))).toThrow(code('ERR_QUOTE_SIGNATURE'))
      expect(pop(attest, tpmSign(ak, attest, { hash: 'sha1' }))).toThrow(code('ERR_QUOTE_HASH_ALG'))
      const tampered = Uint8Array.from(attest)
      tampered[tampered.length - 1]! ^= 1
      expect(pop(tampered, tpmSign(ak, attest))).toThrow(code('ERR_QUOTE_SIGNATURE'))
      const wrongType = makeSoftwareAk(kind === 'rsa' ? 'ecc' : 'rsa')
      expect(pop(attest, tpmSign(wrongType, attest))).toThrow(code('ERR_QUOTE_SIG_SCHEME'))
    })

    test('hostile bytes fail as typed errors, in bounded size', () => {
      const attest = certifyAttest(ak, challenge)
      const sig = tpmSign(ak, attest)
      for (const [a, s] of [
        [attest, new Uint8Array(0)],
        [attest, sig.subarray(0, 5)],
        [new Uint8Array(0), sig],
        [attest.subarray(0, 20), tpmSign(ak, attest.subarray(0, 20))],
        [new Uint8Array(5000), sig],
        [attest, new Uint8Array(5000)],
      ] as const) {
        expect(pop(a, s)).toThrow(expect.objectContaining({ status: 400 }))
      }
    })
  })
}
