/**
 * verifyIakCertify with a software IAK: TPMS_ATTEST (TPM_ST_ATTEST_CERTIFY) built by hand per
 * TCG Part 2 §10.12.8 and signed RSASSA-SHA256 / ECDSA-SHA256 as a TPM would.
 */
import { describe, expect, test } from 'bun:test'
import { TPM_ST } from '../tpm/constants.ts'
import { certifyAttest, makeSoftwareAk, tpmSign } from '../../test/support/software-agent.ts'
import { iakQualifyingData, verifyIakCertify } from './verify-iak-certify.ts'

const ak = makeSoftwareAk('ecc')
const otherAk = makeSoftwareAk('ecc')
const iaks = { rsa: makeSoftwareAk('rsa'), ecc: makeSoftwareAk('ecc') }

for (const [kind, iak] of Object.entries(iaks)) {
  describe(`verifyIakCertify (${kind} IAK)`, () => {
    const id = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
    const check =
      (apiVersion: string, attest: Uint8Array, signature = tpmSign(iak, attest)) =>
      () =>
        verifyIakCertify({ agentId: id, apiVersion, ak: ak.pub, iak: iak.pub, attest, signature })

    test('API 2.6+: qualifyingData = SHA-256(agent id); below 2.6 the raw id', () => {
      expect(check('2.6', certifyAttest(ak, iakQualifyingData(id, '2.6')))).not.toThrow()
      expect(check('3.0', certifyAttest(ak, iakQualifyingData(id, '3.0')))).not.toThrow()
      expect(check('2.5', certifyAttest(ak, Buffer.from(id)))).not.toThrow()
      expect(iakQualifyingData(id, '2.6').byteLength).toBe(32)
    })

    test('rejects wrong qualifying data, another AK, a bad signature, a quote type', () => {
      const err = expect.objectContaining({ status: 400, code: 'ERR_REGISTRAR_IAK' })
      expect(check('2.6', certifyAttest(ak, Buffer.from(id)))).toThrow(err) // 2.5 form on 2.6
      expect(check('2.5', certifyAttest(ak, iakQualifyingData(id, '2.6')))).toThrow(err)
      expect(check('2.6', certifyAttest(otherAk, iakQualifyingData(id, '2.6')))).toThrow(err)
      const attest = certifyAttest(ak, iakQualifyingData(id, '2.6'))
      const sig = tpmSign(iak, attest)
      sig[sig.length - 1]! ^= 1
      expect(check('2.6', attest, sig)).toThrow(err)
      expect(
        check('2.6', certifyAttest(ak, iakQualifyingData(id, '2.6'), TPM_ST.ATTEST_QUOTE)),
      ).toThrow(err)
      expect(check('2.6', attest.subarray(0, 20))).toThrow(err)
      expect(check('2.6', attest, new Uint8Array([0, 0x14]))).toThrow(err)
    })
  })
}
