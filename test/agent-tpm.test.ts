/**
 * The agent's TPM layer against swtpm on loopback: the socket transport, each command the agent
 * uses (GetCapability, CreatePrimary EK = swtpm_setup's persistent EK, NV EK certificate,
 * AK Create/Load under a PolicySecret session, ActivateCredential, PCR_Reset/Extend/Read, Quote,
 * FlushContext, ContextSave/ContextLoad), AK persistence across restarts, swtpm's 3-slot limit,
 * and the connection per operation: between the agent's operations another client has the
 * TPM and finds nothing of the agent's loaded. Quotes are checked
 * with src/tpm verifyQuote and the PCR16 NK binding; ActivateCredential must recover a secret
 * made by src/tpm makeCredential.
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type HardwareAgentTpm, openHardwareAgentTpm } from '../src/agent/tpm/hardware-agent-tpm.ts'
import { TpmAccess } from '../src/agent/tpm/tpm-access.ts'
import { TpmClient } from '../src/agent/tpm/tpm-client.ts'
import { payloadKeyFrom } from '../src/agent/load-or-create-nk.ts'
import { openSwtpmSocket } from '../src/agent/transport/swtpm-socket-transport.ts'
import { serializeTransport } from '../src/agent/transport/tpm-transport.ts'
import { isAgentError } from '../src/agent/errors.ts'
import { TPM_ALG_ID, TPM_RH } from '../src/tpm/constants.ts'
import { serializeCredentialBlob } from '../src/tpm/credential-blob.ts'
import { checkNkBinding } from '../src/tpm/extend-pcr.ts'
import { makeCredential } from '../src/tpm/make-credential.ts'
import { computeName, parseTpm2bPublic } from '../src/tpm/public-area.ts'
import { verifyQuote } from '../src/tpm/verify-quote.ts'
import { ekTemplate } from '../src/agent/tpm/ek-templates.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from './support/swtpm.ts'

const missing = missingSwtpmTools()
if (missing.length > 0) {
  console.log(
    `skipping agent TPM tests: missing ${missing.join(', ')} (apt-get install swtpm swtpm-tools)`,
  )
}

const nk = payloadKeyFrom(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)

describe.skipIf(missing.length > 0)('agent TPM layer on swtpm', () => {
  let swtpm: Swtpm
  let work: string

  const client = async () =>
    new TpmClient(
      serializeTransport(await openSwtpmSocket({ host: '127.0.0.1', port: swtpm.port })),
    )
  const open = async (
    over: Partial<Parameters<typeof openHardwareAgentTpm>[0]> = {},
  ): Promise<HardwareAgentTpm> =>
    openHardwareAgentTpm({
      access: TpmAccess.forTcti({ kind: 'swtpm', host: '127.0.0.1', port: swtpm.port }),
      hashAlg: 'sha256',
      encAlg: 'rsa',
      signAlg: 'rsassa',
      agentDataPath: join(work, 'agent_data.json'),
      nk,
      startup: true,
      ...over,
    })

  beforeAll(async () => {
    swtpm = await startSwtpm()
    work = mkdtempSync(join(tmpdir(), 'kl-agent-tpm-'))
  }, 60_000)

  afterAll(async () => {
    await swtpm?.remove()
    if (work) rmSync(work, { recursive: true, force: true })
  })

  test('raw commands: GetRandom, capabilities, CreatePrimary equals the persistent EK', async () => {
    const c = await client()
    try {
      await c.startup() // already started: TPM_RC_INITIALIZE counts as success
      expect((await c.getRandom(16)).byteLength).toBe(16)
      const persistent = await c.getHandles(0x81000000)
      expect(persistent).toContain(0x81010001)
      const banks = await c.getPcrBanks()
      expect(banks).toContain(TPM_ALG_ID.SHA256)
      expect(banks).toContain(TPM_ALG_ID.SHA1)
      const ek = await c.createPrimary(TPM_RH.ENDORSEMENT, ekTemplate('rsa'))
      const stored = await c.readPublic(0x81010001)
      expect(Buffer.from(ek.publicArea).equals(Buffer.from(stored.publicArea))).toBe(true)
      expect(
        Buffer.from(ek.name).equals(Buffer.from(computeName(parseTpm2bPublic(ek.publicArea)))),
      ).toBe(true)
      await c.flushContext(ek.handle)
      // a flushed handle is gone: the TPM answers with a handle error, surfaced with its RC
      const err = await c.flushContext(ek.handle).catch((e: unknown) => e)
      expect(isAgentError(err, 'ERR_AGENT_TPM_RC')).toBe(true)
    } finally {
      await c.close()
    }
  })

  test('PCR_Reset/Extend(16) and PCR_Read of more than 8 PCRs', async () => {
    const c = await client()
    try {
      await c.pcrReset(16)
      const digest = randomBytes(32)
      await c.pcrExtend(16, [{ hashAlg: TPM_ALG_ID.SHA256, digest }])
      const groups = await c.pcrRead(TPM_ALG_ID.SHA256, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16])
      expect(groups.length).toBe(2)
      const values = groups.flat()
      expect(values.length).toBe(11)
      const { extendPcr } = await import('../src/tpm/extend-pcr.ts')
      expect(Buffer.from(values[10]!).toString('hex')).toBe(
        Buffer.from(extendPcr('sha256', new Uint8Array(32), digest)).toString('hex'),
      )
    } finally {
      await c.close()
    }
  })

  test('identity: persistent EK, EK certificate from NV, AK created and saved 0600', async () => {
    const tpm = await open()
    try {
      expect(tpm.akReused).toBe(false)
      expect(statSync(join(work, 'agent_data.json')).mode & 0o777).toBe(0o600)
      const ek = parseTpm2bPublic(tpm.ekTpm2b)
      expect(ek.type).toBe('rsa')
      expect(tpm.ekCertPem).toContain('BEGIN CERTIFICATE')
      const cert = new X509Certificate(tpm.ekCertPem!)
      const jwk = cert.publicKey.export({ format: 'jwk' })
      expect(
        Buffer.from(jwk.n!, 'base64url').equals(Buffer.from(ek.type === 'rsa' ? ek.unique.n : [])),
      ).toBe(true)
      const ak = parseTpm2bPublic(tpm.akTpm2b)
      expect(ak.objectAttributes).toBe(0x00050072)
      expect(tpm.banks).toContain('sha256')
    } finally {
      await tpm.close()
    }
  })

  test('quote verifies with src/tpm verifyQuote and binds the NK into PCR16', async () => {
    const tpm = await open()
    try {
      expect(tpm.akReused).toBe(true)
      const nonce = 'Ai5M5SjYjnkyv4P7itH1'
      const quote = await tpm.quote(nonce, [0, 10])
      expect(quote.startsWith('r/1RDR4AY')).toBe(true)
      const v = verifyQuote({
        quote,
        akPublic: parseTpm2bPublic(tpm.akTpm2b),
        nonce,
        hashAlg: 'sha256',
        signAlg: 'rsassa',
      })
      expect(v.pcrSelection[0]!.pcrs).toEqual([0, 10, 16])
      checkNkBinding(v.pcrs, 'sha256', tpm.nkPem)
      // a different nonce must not verify
      expect(() =>
        verifyQuote({
          quote,
          akPublic: parseTpm2bPublic(tpm.akTpm2b),
          nonce: 'other',
          hashAlg: 'sha256',
        }),
      ).toThrow()
    } finally {
      await tpm.close()
    }
  })

  test('ActivateCredential recovers a makeCredential secret; a wrong AK name fails', async () => {
    const tpm = await open()
    try {
      const ek = parseTpm2bPublic(tpm.ekTpm2b)
      const akName = computeName(parseTpm2bPublic(tpm.akTpm2b))
      const secret = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345')
      const blob = serializeCredentialBlob(makeCredential(ek, akName, secret))
      const got = await tpm.activateCredential(blob)
      expect(Buffer.from(got).equals(secret)).toBe(true)
      const wrongName = new Uint8Array(akName)
      wrongName[5]! ^= 1
      const bad = serializeCredentialBlob(makeCredential(ek, wrongName, secret))
      const err = await tpm.activateCredential(bad).catch((e: unknown) => e)
      expect(isAgentError(err, 'ERR_AGENT_TPM_RC')).toBe(true)
      // the failed command's policy session was flushed too: nothing of the agent's is loaded
      const c = await client()
      try {
        expect(await c.getHandles(0x02000000)).toEqual([])
        expect(await c.getHandles(0x03000000)).toEqual([])
        expect(await c.getHandles(0x80000000)).toEqual([])
      } finally {
        await c.close()
      }
      expect(Buffer.from(await tpm.activateCredential(blob)).equals(secret)).toBe(true)
    } finally {
      await tpm.close()
    }
  })

  test('ECC: L-2 EK created (no persistent P-256 EK, no P-256 cert), ECDSA quote verifies, AK reloaded after a power cycle', async () => {
    const dataPath = join(work, 'agent_data_ecc.json')
    let tpm = await open({ encAlg: 'ecc', signAlg: 'ecdsa', agentDataPath: dataPath })
    const akFirst = Buffer.from(tpm.akTpm2b)
    try {
      expect(parseTpm2bPublic(tpm.ekTpm2b).type).toBe('ecc')
      expect(tpm.ekCertPem).toBeUndefined()
      const q = await tpm.quote('abc123', [])
      const v = verifyQuote({
        quote: q,
        akPublic: parseTpm2bPublic(tpm.akTpm2b),
        nonce: 'abc123',
        hashAlg: 'sha256',
        signAlg: 'ecdsa',
      })
      checkNkBinding(v.pcrs, 'sha256', tpm.nkPem)
      // the transient EK comes back from its saved context for the activation
      const ek = parseTpm2bPublic(tpm.ekTpm2b)
      const secret = randomBytes(32)
      const blob = serializeCredentialBlob(
        makeCredential(ek, computeName(parseTpm2bPublic(tpm.akTpm2b)), secret),
      )
      expect(Buffer.from(await tpm.activateCredential(blob)).equals(secret)).toBe(true)
    } finally {
      await tpm.close()
    }
    await swtpm.restart()
    tpm = await open({ encAlg: 'ecc', signAlg: 'ecdsa', agentDataPath: dataPath })
    try {
      expect(tpm.akReused).toBe(true)
      expect(Buffer.from(tpm.akTpm2b).equals(akFirst)).toBe(true)
      const q = await tpm.quote('after', [16])
      verifyQuote({
        quote: q,
        akPublic: parseTpm2bPublic(tpm.akTpm2b),
        nonce: 'after',
        hashAlg: 'sha256',
      })
    } finally {
      await tpm.close()
    }
  }, 30_000)

  test('connection per operation: another client has the TPM between quotes, concurrent quotes queue', async () => {
    const tpm = await open()
    try {
      for (let i = 0; i < 3; i++) {
        await tpm.quote(`between-${i}`, [10])
        // with the agent's connection held open, this connect would wait for swtpm forever
        const c = await client()
        try {
          expect(await c.getHandles(0x80000000)).toEqual([])
          await c.pcrExtend(23, [{ hashAlg: TPM_ALG_ID.SHA256, digest: randomBytes(32) }])
        } finally {
          await c.close()
        }
      }
      const nonces = ['q0', 'q1', 'q2', 'q3', 'q4']
      const quotes = await Promise.all(nonces.map((n) => tpm.quote(n, [0, 23])))
      quotes.forEach((quote, i) => {
        const v = verifyQuote({
          quote,
          akPublic: parseTpm2bPublic(tpm.akTpm2b),
          nonce: nonces[i]!,
          hashAlg: 'sha256',
          signAlg: 'rsassa',
        })
        checkNkBinding(v.pcrs, 'sha256', tpm.nkPem)
      })
    } finally {
      await tpm.close()
    }
  })

  test('swtpm restarted under a running agent: the next quote reconnects and reloads the AK', async () => {
    const tpm = await open()
    try {
      await tpm.quote('before', [])
      await swtpm.restart()
      const quote = await tpm.quote('after-restart', [16])
      verifyQuote({
        quote,
        akPublic: parseTpm2bPublic(tpm.akTpm2b),
        nonce: 'after-restart',
        hashAlg: 'sha256',
      })
    } finally {
      await tpm.close()
    }
  }, 30_000)

  test('swtpm transient slots: open/close cycles do not leak objects', async () => {
    for (let i = 0; i < 4; i++) {
      const tpm = await open()
      await tpm.quote(`n${i}`, [])
      await tpm.close()
    }
    const c = await client()
    try {
      expect(await c.getHandles(0x80000000)).toEqual([])
    } finally {
      await c.close()
    }
  })
})
