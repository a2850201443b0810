import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAgentError } from '../errors.ts'
import { loadTpmDeviceAddon } from './load-tpm-device-addon.ts'
import { openDeviceTransport } from './open-device-transport.ts'
import { parseTcti, resolveTcti } from './open-transport.ts'
import { serializeTransport, type TpmTransport } from './tpm-transport.ts'

describe('TCTI selection (rust-keylime TCTI, tpm2-tools TPM2TOOLS_TCTI)', () => {
  test('device and swtpm forms', () => {
    expect(parseTcti('device:/dev/tpmrm0')).toEqual({ kind: 'device', path: '/dev/tpmrm0' })
    expect(parseTcti('device')).toEqual({ kind: 'device', path: '/dev/tpm0' })
    expect(parseTcti('swtpm:host=127.0.0.1,port=2321')).toEqual({
      kind: 'swtpm',
      host: '127.0.0.1',
      port: 2321,
    })
    expect(parseTcti('mssim:port=4000')).toEqual({ kind: 'swtpm', host: 'localhost', port: 4000 })
  })

  test('bad forms name the variable', () => {
    for (const bad of ['tabrmd:bus_type=system', 'swtpm:port=99999', 'swtpm:hots=x']) {
      let err: unknown
      try {
        parseTcti(bad, 'TPM2TOOLS_TCTI')
      } catch (e) {
        err = e
      }
      expect(isAgentError(err, 'ERR_AGENT_CONFIG')).toBe(true)
      expect((err as Error).message).toContain('TPM2TOOLS_TCTI')
    }
  })

  test('TCTI wins over TPM2TOOLS_TCTI; default is a device', () => {
    expect(resolveTcti({ TCTI: 'swtpm:port=1', TPM2TOOLS_TCTI: 'device:/x' })).toEqual({
      kind: 'swtpm',
      host: 'localhost',
      port: 1,
    })
    expect(resolveTcti({ TPM2TOOLS_TCTI: 'device:/x' })).toEqual({ kind: 'device', path: '/x' })
    expect(resolveTcti({}).kind).toBe('device')
  })
})

describe('serializeTransport', () => {
  test('one command in flight; a failure does not block the queue', async () => {
    let inFlight = 0
    let maxInFlight = 0
    const inner: TpmTransport = {
      description: 'fake',
      async transmit(cmd) {
        inFlight++
        maxInFlight = Math.max(maxInFlight, inFlight)
        await Bun.sleep(1)
        inFlight--
        if (cmd[0] === 0xff) throw new Error('boom')
        return cmd
      },
      async close() {},
    }
    const t = serializeTransport(inner)
    const results = await Promise.allSettled(
      [1, 0xff, 2, 3].map((b) => t.transmit(Uint8Array.of(b))),
    )
    expect(maxInFlight).toBe(1)
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
    ])
  })
})

describe('device transport (a FIFO stands in for the device: it echoes the command)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kl-agent-dev-'))
  const fifo = join(dir, 'tpm')
  Bun.spawnSync(['mkfifo', fifo])
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const cmd = Uint8Array.from(Buffer.from('80010000000c0000017b0010', 'hex'))

  test('node:fs fallback: one write, one read', async () => {
    const t = await openDeviceTransport({ path: fifo, mode: 'fs' })
    expect(t.description).toContain('(fs')
    expect(Buffer.from(await t.transmit(cmd)).equals(Buffer.from(cmd))).toBe(true)
    await t.close()
  })

  test.skipIf(loadTpmDeviceAddon() === undefined)('N-API addon: write, poll, read', async () => {
    const t = await openDeviceTransport({ path: fifo, mode: 'addon', timeoutMs: 5000 })
    expect(t.description).toContain('(addon)')
    for (let i = 0; i < 3; i++) {
      expect(Buffer.from(await t.transmit(cmd)).equals(Buffer.from(cmd))).toBe(true)
    }
    await t.close()
    await expect(t.transmit(cmd)).rejects.toThrow(/closed/)
  })

  test('a missing device is a transport error naming the path', async () => {
    const err = await openDeviceTransport({ path: join(dir, 'nope') }).catch((e: unknown) => e)
    expect(isAgentError(err, 'ERR_AGENT_TRANSPORT')).toBe(true)
    expect((err as Error).message).toContain('nope')
  })
})
