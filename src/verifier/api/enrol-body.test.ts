import { describe, expect, test } from 'bun:test'
import { isKeylimeError } from '../../errors.ts'
import { parseBody } from '../../http/body-schema.ts'
import { ENROL_MB_BODY, enrolBodySchema } from './enrol-body.ts'

/** The 400 message of parsing `body` (an agent part with `requireMtls`), or 'ok'. */
function refusal(body: Record<string, unknown>, requireMtls = false): string {
  try {
    parseBody(enrolBodySchema(requireMtls), body)
    parseBody(ENROL_MB_BODY, body)
    return 'ok'
  } catch (err) {
    if (!isKeylimeError(err)) throw err
    expect(err.status).toBe(400)
    return err.message
  }
}

/** Every key upstream requires, with values that pass up to `ak_tpm` (which does not). */
const body = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  tpm_policy: '{"mask":"0x0"}',
  runtime_policy: '',
  mb_policy: null,
  mb_policy_name: '',
  ima_sign_verification_keys: '',
  metadata: {},
  revocation_key: '',
  accept_tpm_hash_algs: ['sha256'],
  accept_tpm_encryption_algs: ['rsa'],
  accept_tpm_signing_algs: ['rsassa'],
  ak_tpm: 'AA==',
  cloudagent_ip: '127.0.0.1',
  cloudagent_port: 9002,
  ...over,
})

describe('enrolment body (upstream wording)', () => {
  test("a missing key is Python's KeyError text, in upstream's order", () => {
    expect(refusal({})).toBe("Exception error: 'tpm_policy'")
    const { mb_policy: _, ak_tpm: __, ...rest } = body()
    expect(refusal(rest)).toBe("Exception error: 'mb_policy'")
  })

  test('values are refused in upstream order, with its messages', () => {
    expect(refusal(body({ tpm_policy: 5 }))).toBe(
      'Exception error: tpm_policy must be a JSON object',
    )
    expect(refusal(body({ v: 'AAAA' }))).toBe('Exception error: v must be a 16- or 32-byte key')
    expect(refusal(body({ v: 5 }))).toBe('Exception error: v must be a base64 string')
    expect(refusal(body({ cloudagent_ip: 'a b' }))).toBe(
      'Exception error: cloudagent_ip is required',
    )
    expect(refusal(body({ cloudagent_port: '0' }))).toBe(
      'Exception error: cloudagent_port must be a port number',
    )
    expect(refusal(body({ supported_version: 2 }))).toBe(
      'Exception error: supported_version must be a string',
    )
    expect(refusal(body({ mtls_cert: 1 }))).toBe('Exception error: mtls_cert must be a PEM string')
    expect(refusal(body({ mtls_cert: 'x' }))).toBe(
      'Exception error: mtls_cert is not one PEM certificate',
    )
    expect(refusal(body())).toStartWith('Exception error: ak_tpm is not a TPM2B_PUBLIC key: ')
  })

  test('with enable_agent_mtls, a certificate is required (before ak_tpm is read)', () => {
    expect(refusal(body({ mtls_cert: 'disabled' }), true)).toBe(
      'mTLS certificate for agent is required!',
    )
    expect(refusal(body(), true)).toBe('mTLS certificate for agent is required!')
  })

  test('measured-boot part: JSON text or inline, empty is none', () => {
    expect(parseBody(ENROL_MB_BODY, { mb_policy: '' }).mb_policy).toBeNull()
    expect(parseBody(ENROL_MB_BODY, { mb_policy: { a: 1 } }).mb_policy).toBe('{"a":1}')
    expect(() => parseBody(ENROL_MB_BODY, { mb_policy: '{bad' })).toThrow(
      'Exception error: mb_policy is not valid JSON',
    )
    expect(() => parseBody(ENROL_MB_BODY, { mb_policy_name: 3 })).toThrow(
      'Exception error: mb_policy_name must be a string',
    )
  })
})
