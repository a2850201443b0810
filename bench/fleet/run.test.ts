/**
 * The CLI end to end in-process: `main()` registers a small fleet against a registrar stub
 * without `/version` (so the agents fall back to newest-first), serves for a second and exits 0; `--fault` parsing and option errors.
 *
 * @module
 */

import { expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolveCaSettings } from '../../src/ca/ca-settings.ts'
import { ensureCvCa } from '../../src/ca/ensure-cv-ca.ts'
import { serializeCredentialBlob } from '../../src/tpm/credential-blob.ts'
import { makeCredential } from '../../src/tpm/make-credential.ts'
import { computeName, parseTpm2bPublic } from '../../src/tpm/public-area.ts'
import { main, parseFaults } from './run.ts'

test('parseFaults maps names to agent faults and rejects bad input', () => {
  expect(
    parseFaults('bad-signature:0.01,slow:0.5:250,dead:0,pcr-change:1,wrong-nonce:0.2'),
  ).toEqual([
    { fraction: 0.01, faults: { badSignature: 1 } },
    { fraction: 0.5, faults: { slowMs: 250 } },
    { fraction: 0, faults: { dead: true } },
    { fraction: 1, faults: { pcrChange: 1 } },
    { fraction: 0.2, faults: { wrongNonce: 1 } },
  ])
  expect(parseFaults(undefined)).toEqual([])
  expect(() => parseFaults('bogus:0.1')).toThrow(
    expect.objectContaining({ code: 'ERR_FLEET_CONFIG' }),
  )
  expect(() => parseFaults('dead:2')).toThrow(expect.objectContaining({ code: 'ERR_FLEET_CONFIG' }))
})

test('main registers the fleet, serves for --duration and exits 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-run-'))
  let activations = 0
  const stub = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: async (req) => {
      const path = new URL(req.url).pathname
      // a registrar without /version: the agent must try its versions newest first (2.6 here)
      if (path === '/version') return new Response('not found', { status: 404 })
      if (!path.startsWith('/v2.6/'))
        return Response.json({ code: 400, status: 'no', results: {} }, { status: 400 })
      const body = (await req.json()) as Record<string, string>
      if (req.method === 'PUT') {
        activations++
        return Response.json({ code: 200, status: 'Success', results: {} })
      }
      const ak = parseTpm2bPublic(Buffer.from(body.aik_tpm!, 'base64'))
      const ek = parseTpm2bPublic(Buffer.from(body.ek_tpm!, 'base64'))
      const blob = serializeCredentialBlob(
        makeCredential(ek, computeName(ak), Buffer.from('A'.repeat(32))),
      )
      return Response.json({
        code: 200,
        status: 'Success',
        results: { blob: Buffer.from(blob).toString('base64') },
      })
    },
  })
  try {
    await ensureCvCa({ keylimeDir: dir, settings: resolveCaSettings(), hostname: 'localhost' })
    const code = await main([
      '--count',
      '3',
      '--registrar',
      `127.0.0.1:${stub.port}`,
      '--ca-dir',
      join(dir, 'cv_ca'),
      '--duration',
      '1',
      '--interval',
      '1',
      '--key-cache',
      join(dir, 'keys.json'),
    ])
    expect(code).toBe(0)
    expect(activations).toBe(3)
    // the key cache was written and is reused
    expect(await Bun.file(join(dir, 'keys.json')).exists()).toBe(true)
    await expect(main(['--count', '1', '--registrar', 'nope', '--ca-dir', dir])).rejects.toThrow()
  } finally {
    stub.stop(true)
    rmSync(dir, { recursive: true, force: true })
  }
}, 30_000)
