import { expect, test } from 'bun:test'
import type { AgentTpm } from '../agent-tpm.ts'
import { AgentApi } from './agent-api.ts'
import type { KeyExchange } from './key-exchange.ts'

test('a path of 64 Ki slashes is answered in linear time (was /\\/+$/, quadratic)', async () => {
  // /version and routing never touch the TPM or the keys.
  const api = new AgentApi({
    uuid: 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000',
    tpm: {} as AgentTpm,
    keys: {} as KeyExchange,
  })
  const url = new URL(`https://127.0.0.1/${'/'.repeat(64 * 1024)}version`)
  const t0 = performance.now()
  const res = await api.handle(new Request(url.href), url)
  expect(performance.now() - t0).toBeLessThan(100)
  expect(res.status).toBe(400)
  const ok = await api.handle(new Request('https://127.0.0.1/version///'))
  expect(ok.status).toBe(200)
})
