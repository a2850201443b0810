/**
 * verifyIakCertify with a software IAK: TPMS_ATTEST (TPM_ST_ATTEST_CERTIFY) built by hand per
 * TCG Part 2 §10.12.8 and signed RSASSA-SHA256 / ECDSA-SHA256 as a TPM would.
 */
import { describe, expect, test } from 'bun:test'
import { sign } from 'node:crypto'
import { ByteWriter } from '../tpm/byte-writer.ts'
import { TPM_ALG_ID, TPM_GENERATED_VALUE, TPM_ST } from '../tpm/constants.ts'
import { computeName } from '../tpm/public-area.ts'
import { makeSoftwareAk, type SoftwareKey } from '../../test/support/software-agent.ts'
import { iakQualifyingData, verifyIakCertify } from './verify-iak-certify.ts'

const ak = makeSoftwareAk('ecc')
const otherAk = makeSoftwareAk('ecc')
const iaks = { rsa: makeSoftwareAk('rsa'), ecc: makeSoftwareAk('ecc') }

function certifyAttest(
  certified: SoftwareKey,
  extraData: Uint8Array,
  type: number = TPM_ST.ATTEST_CERTIFY,
): Uint8Array {
  const name = computeName(certified.pub)
  return new ByteWriter()
    .u32(TPM_GENERATED_VALUE)
    .u16(type)
    .tpm2b(new Uint8Array(34)) // qualifiedSigner
    .tpm2b(extraData)
    .u64(123456n) // clock
    .u32(1) // resetCount
    .u32(0) // restartCount
    .u8(1) // safe
    .u64(0x2019102300000000n) // firmwareVersion
    .tpm2b(name) // TPMS_CERTIFY_INFO.name
    .tpm2b(name) // qualifiedName (not checked)
    .finish()
}

function tpmSign(iak: SoftwareKey, attest: Uint8Array): Uint8Array {
  if (iak.type === 'rsa') {
    const sig = sign('sha256', attest, iak.privateKey)
    return new ByteWriter().u16(TPM_ALG_ID.RSASSA).u16(TPM_ALG_ID.SHA256).tpm2b(sig).finish()
  }
  const sig = sign('sha256', attest, { key: iak.privateKey, dsaEncoding: 'ieee-p1363' })
  return new ByteWriter()
    .u16(TPM_ALG_ID.ECDSA)
    .u16(TPM_ALG_ID.SHA256)
    .tpm2b(sig.subarray(0, 32))
    .tpm2b(sig.subarray(32))
    .finish()
}

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
