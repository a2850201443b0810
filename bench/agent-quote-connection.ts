/**
 * What a connection per TPM operation costs the agent on swtpm: quotes through
 * `HardwareAgentTpm` with the connection opened per operation (the agent's way for swtpm and
 * `/dev/tpm0`: connect, ContextLoad of the AK, PCR_Reset + PCR_Extend of PCR 16, Quote,
 * PCR_Read, FlushContext, close) against one connection kept open (the same commands, no
 * connect/close). Both load the AK from its saved context per quote, so the difference is the
 * connection alone; `AK held` is the agent before: one connection, the AK loaded once, so per
 * quote only PCR_Reset, PCR_Extend, Quote and PCR_Read. `raw connect` times a bare connect + one
 * PCR_Read + close.
 *
 * Usage: `bun bench/agent-quote-connection.ts [quotes=200] [runs=5]` (median of the runs).
 *
 * @module
 */

import 'reflect-metadata'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { payloadKeyFrom } from '../src/agent/load-or-create-nk.ts'
import { openHardwareAgentTpm } from '../src/agent/tpm/hardware-agent-tpm.ts'
import { TpmAccess } from '../src/agent/tpm/tpm-access.ts'
import { openTransport } from '../src/agent/transport/open-transport.ts'
import { TPM_ALG_ID } from '../src/tpm/constants.ts'
import { startSwtpm } from '../test/support/swtpm.ts'

/** The RSA EK swtpm_setup makes persistent. */
const PERSISTENT_RSA_EK = 0x81010001
const quotes = Number(process.argv[2] ?? 200)
const runs = Number(process.argv[3] ?? 5)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const swtpm = await startSwtpm({ banks: 'sha256' })
const work = mkdtempSync(join(tmpdir(), 'kl-bench-quote-'))
const spec = { kind: 'swtpm', host: '127.0.0.1', port: swtpm.port } as const
const nk = payloadKeyFrom(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)
/** The agent's TPM identity on the bench swtpm, over `access` (default: a new one). */
function openAgentTpm(
  keepOpen: boolean,
  access = new TpmAccess({ open: () => openTransport(spec), description: 'swtpm', keepOpen }),
) {
  return openHardwareAgentTpm({
    access,
    hashAlg: 'sha256',
    encAlg: 'rsa',
    signAlg: 'rsassa',
    agentDataPath: join(work, 'agent_data.json'),
    nk,
  })
}

try {
  const results: Record<string, number[]> = { 'per operation': [], 'kept open': [] }
  for (let r = 0; r < runs; r++) {
    for (const keepOpen of [false, true]) {
      const tpm = await openAgentTpm(keepOpen)
      for (let i = 0; i < 10; i++) await tpm.quote(`warm${i}`, [0, 10])
      const t = performance.now()
      for (let i = 0; i < quotes; i++) await tpm.quote(`n${i}`, [0, 10])
      results[keepOpen ? 'kept open' : 'per operation']!.push((performance.now() - t) / quotes)
      await tpm.close()
    }
  }
  // before: the AK loaded once on one connection (the saved context gives the handle)
  const held: number[] = []
  const pem = Buffer.from(nk.publicPem)
  const sha256 = new Bun.CryptoHasher('sha256').update(pem).digest()
  for (let r = 0; r < runs; r++) {
    const access = new TpmAccess({ open: () => openTransport(spec), description: 'swtpm' })
    const tpm = await openAgentTpm(true, access)
    held.push(
      await access.use(async (c) => {
        const data = JSON.parse(readFileSync(join(work, 'agent_data.json'), 'utf8')) as {
          ak_public: number[]
          ak_private: number[]
        }
        const blobs = {
          publicArea: Uint8Array.from(data.ak_public),
          privateArea: Uint8Array.from(data.ak_private),
        }
        const session = await c.endorsementSession()
        const ak = (await c.load(PERSISTENT_RSA_EK, { kind: 'policy', session }, blobs)).handle
        const sel = [{ hashAlg: TPM_ALG_ID.SHA256, pcrs: [0, 10, 16] }]
        const t = performance.now()
        for (let i = 0; i < quotes; i++) {
          await c.pcrReset(16)
          await c.pcrExtend(16, [{ hashAlg: TPM_ALG_ID.SHA256, digest: sha256 }])
          await c.quote(ak, Buffer.from(`n${i}`), sel)
          await c.pcrRead(TPM_ALG_ID.SHA256, [0, 10, 16])
        }
        const ms = (performance.now() - t) / quotes
        await c.flushContext(ak)
        return ms
      }),
    )
    await tpm.close()
  }
  const raw: number[] = []
  for (let r = 0; r < runs; r++) {
    const access = TpmAccess.forTcti(spec)
    const t = performance.now()
    for (let i = 0; i < quotes; i++) {
      await access.use((c) => c.pcrRead(TPM_ALG_ID.SHA256, [16]))
    }
    raw.push((performance.now() - t) / quotes)
    await access.close()
  }
  const per = median(results['per operation']!)
  const kept = median(results['kept open']!)
  console.log(`quotes: ${quotes} × ${runs} runs on swtpm (PCRs 0, 10, 16; RSA-2048 AK)`)
  console.log(`per operation : ${per.toFixed(2)} ms per quote`)
  console.log(`kept open     : ${kept.toFixed(2)} ms per quote`)
  console.log(
    `difference    : ${(per - kept).toFixed(2)} ms (${((per / kept - 1) * 100).toFixed(1)} %)`,
  )
  console.log(`AK held       : ${median(held).toFixed(2)} ms per quote (the agent before)`)
  console.log(`raw connect + PCR_Read + close: ${median(raw).toFixed(2)} ms`)
} finally {
  await swtpm.remove()
  rmSync(work, { recursive: true, force: true })
}
