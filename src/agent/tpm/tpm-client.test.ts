import { describe, expect, test } from 'bun:test'
import { ByteWriter } from '../../tpm/byte-writer.ts'
import { TPM_RC } from '../../tpm/constants.ts'
import { isAgentError } from '../errors.ts'
import type { TpmTransport } from '../transport/tpm-transport.ts'
import { baseRc, describeRc, TpmClient } from './tpm-client.ts'

/** A transport that answers from a script of response codes, then GetRandom data. */
function scripted(rcs: number[]): TpmTransport & { sent: number } {
  const t = {
    description: 'script',
    sent: 0,
    async transmit(_cmd: Uint8Array) {
      t.sent++
      const rc = rcs.shift() ?? 0
      const w = new ByteWriter().u16(0x8001).u32(0).u32(rc)
      if (rc === 0) w.tpm2b(Uint8Array.of(1, 2, 3, 4))
      const out = w.finish()
      new DataView(out.buffer).setUint32(2, out.byteLength)
      return out
    },
    async close() {},
  }
  return t
}

describe('TpmClient response handling', () => {
  test('YIELDED, TESTING and RETRY are retried', async () => {
    const t = scripted([TPM_RC.RETRY, TPM_RC.YIELDED, TPM_RC.TESTING])
    const c = new TpmClient(t, { retryDelayMs: 1 })
    expect([...(await c.getRandom(4))]).toEqual([1, 2, 3, 4])
    expect(t.sent).toBe(4)
  })

  test('retries are bounded; other codes fail at once with the RC', async () => {
    const t = scripted(Array(20).fill(TPM_RC.RETRY))
    const c = new TpmClient(t, { retries: 3, retryDelayMs: 1 })
    const err = await c.getRandom(4).catch((e: unknown) => e)
    expect(isAgentError(err, 'ERR_AGENT_TPM_RC')).toBe(true)
    expect(t.sent).toBe(4)
    const t2 = scripted([TPM_RC.OBJECT_MEMORY])
    const err2 = await new TpmClient(t2).getRandom(4).catch((e: unknown) => e)
    expect((err2 as { rc: number }).rc).toBe(TPM_RC.OBJECT_MEMORY)
    expect((err2 as Error).message).toContain('OBJECT_MEMORY')
    expect(t2.sent).toBe(1)
  })

  test('a size field that disagrees with the response is rejected', async () => {
    const t: TpmTransport = {
      description: 'short',
      async transmit() {
        return Uint8Array.from(Buffer.from('800100000020000000000004', 'hex'))
      },
      async close() {},
    }
    const err = await new TpmClient(t).getRandom(4).catch((e: unknown) => e)
    expect(isAgentError(err, 'ERR_AGENT_TPM_RESPONSE')).toBe(true)
  })

  test('format-1 codes are named without their handle/parameter index', () => {
    expect(baseRc(0x18b)).toBe(TPM_RC.HANDLE)
    expect(describeRc(0x18b)).toBe('TPM_RC_HANDLE (0x18b)')
    expect(describeRc(0x922)).toBe('TPM_RC_RETRY (0x922)')
  })
})
