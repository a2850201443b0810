/**
 * The fleet over real mTLS listeners on loopback: the agent API (versions, quotes, IMA list,
 * errors), client-certificate enforcement, every injected fault, registration against an in-test
 * registrar stub that checks the wire format, and the three-party key exchange through
 * enrollAgent and a verifier stub that delivers V as a verifier does.
 *
 * @module
 */

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import {
  constants,
  createHmac,
  generateKeyPairSync,
  type KeyObject,
  publicEncrypt,
  randomBytes,
  sign,
} from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { zipSync } from 'fflate'
import { ensureCvCa } from '../../src/ca/ensure-cv-ca.ts'
import { resolveCaSettings } from '../../src/ca/ca-settings.ts'
import { AK_EXPECTED_ATTRS } from '../../src/tpm/constants.ts'
import { serializeCredentialBlob } from '../../src/tpm/credential-blob.ts'
import { checkNkBinding } from '../../src/tpm/extend-pcr.ts'
import { verifyHmacProof } from '../../src/tpm/hmac-proof.ts'
import { makeCredential } from '../../src/tpm/make-credential.ts'
import { computeName, parseTpm2bPublic } from '../../src/tpm/public-area.ts'
import { verifyQuote } from '../../src/tpm/verify-quote.ts'
import { createAgentCert } from '../support/fleet/agent-cert.ts'
import { enrollAgent, simAgentIdentity } from '../support/fleet/enroll-agent.ts'
import { agentAddress, type Fleet, startFleet } from '../support/fleet/fleet.ts'
import { type CaDirMaterial, loadCaDir } from '../support/fleet/load-ca-dir.ts'
import { FAULT_PCR, type SimAgent } from '../support/fleet/sim-agent.ts'

let dir: string
let ca: CaDirMaterial
let fleet: Fleet

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fleet-test-'))
  await ensureCvCa({ keylimeDir: dir, settings: resolveCaSettings(), hostname: 'localhost' })
  ca = await loadCaDir(join(dir, 'cv_ca'))
  fleet = await startFleet({ count: 4, caCertPem: ca.caCertPem, imaEntries: 6, listen: 'ports' })
}, 30_000)

afterAll(async () => {
  await fleet?.stop()
  rmSync(dir, { recursive: true, force: true })
})

/** GET/POST an agent over mTLS with the cv_ca client certificate (pinning the agent cert). */
async function call(
  agent: SimAgent,
  path: string,
  init: {
    method?: string
    body?: unknown
    noClientCert?: boolean
    cert?: string
    key?: string
  } = {},
): Promise<{
  status: number
  body: { code: number; status: string; results: Record<string, unknown> | null }
}> {
  const res = await fetch(`${fleet.urlOf(agent)}${path}`, {
    method: init.method ?? 'GET',
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    tls: {
      ca: [agent.mtlsCertPem],
      ...(init.noClientCert
        ? {}
        : { cert: init.cert ?? ca.client.cert, key: init.key ?? ca.client.key }),
      checkServerIdentity: () => undefined,
    },
  } as RequestInit)
  return { status: res.status, body: (await res.json()) as never }
}

function akOf(agent: SimAgent) {
  return parseTpm2bPublic(agent.tpm.akTpm2b)
}

describe('agent API over mTLS', () => {
  test('GET /version and unknown versions', async () => {
    const a = fleet.agents[0]!
    const v = await call(a, '/version')
    expect(v.status).toBe(200)
    expect(v.body.results).toEqual({
      supported_version: '2.6',
      supported_versions: ['2.1', '2.2', '2.3', '2.4', '2.5', '2.6'],
    })
    const bad = await call(a, '/v9.9/keys/pubkey')
    expect(bad.status).toBe(400)
    expect(bad.body).toEqual({ code: 400, status: 'API version not supported: v9.9', results: {} })
    expect((await call(a, '/v2.1/agent/info')).status).toBe(400)
    const info = await call(a, '/v2.2/agent/info')
    expect(info.body.results).toMatchObject({
      agent_uuid: a.uuid,
      tpm_hash_alg: 'sha256',
      tpm_sign_alg: 'ecdsa',
    })
    expect((await call(a, '/v2.6/keys/pubkey', { method: 'POST', body: {} })).status).toBe(405)
  })

  test('identity quote verifies with the registered AK and binds the served pubkey', async () => {
    const a = fleet.agents[1]!
    const pub = await call(a, '/v2.6/keys/pubkey')
    const r = await call(a, '/v2.6/quotes/identity?nonce=Ai5M5SjYjnkyv4P7itH1')
    expect(r.status).toBe(200)
    const res = r.body.results!
    expect(res).toMatchObject({ hash_alg: 'sha256', enc_alg: 'ecc256', sign_alg: 'ecdsa' })
    expect(res.pubkey).toBe(pub.body.results!.pubkey)
    const q = verifyQuote({
      quote: String(res.quote),
      akPublic: akOf(a),
      nonce: 'Ai5M5SjYjnkyv4P7itH1',
      hashAlg: 'sha256',
      signAlg: 'ecdsa',
    })
    expect(q.pcrSelection[0]!.pcrs).toEqual([16])
    checkNkBinding(q.pcrs, 'sha256', String(res.pubkey))
    // API < 2.5 reports enc_alg without the size
    const old = await call(a, '/v2.4/quotes/identity?nonce=abc')
    expect(old.body.results!.enc_alg).toBe('ecc')
    expect((await call(a, '/v2.6/quotes/identity?nonce=a-b')).status).toBe(400)
    expect((await call(a, `/v2.6/quotes/identity?nonce=${'a'.repeat(65)}`)).status).toBe(400)
  })

  test('integrity quote: mask, partial, IMA list from an entry, PCR10 matches the list', async () => {
    const a = fleet.agents[2]!
    const r = await call(a, '/v2.6/quotes/integrity?nonce=n1&mask=0x8400&partial=1&ima_ml_entry=0')
    expect(r.status).toBe(200)
    const res = r.body.results!
    expect(res.pubkey).toBeUndefined()
    expect(res.ima_measurement_list_entry).toBe(0)
    const lines = String(res.ima_measurement_list).split('\n').filter(Boolean)
    expect(lines).toHaveLength(6)
    expect(lines[0]).toContain(' boot_aggregate')
    expect(typeof res.boottime).toBe('number')
    const q = verifyQuote({
      quote: String(res.quote),
      akPublic: akOf(a),
      nonce: 'n1',
      hashAlg: 'sha256',
    })
    expect(q.pcrSelection[0]!.pcrs).toEqual([10, 15, 16])
    expect(Buffer.from(q.pcrs.get('sha256')!.get(10)!)).toEqual(
      Buffer.from(fleet.imaLog!.pcr10('sha256')!),
    )
    const from4 = await call(a, '/v2.6/quotes/integrity?nonce=n2&mask=400&partial=0&ima_ml_entry=4')
    expect(from4.body.results!.ima_measurement_list_entry).toBe(4)
    expect(
      String(from4.body.results!.ima_measurement_list).split('\n').filter(Boolean),
    ).toHaveLength(2)
    expect(typeof from4.body.results!.pubkey).toBe('string')
    const past = await call(
      a,
      '/v2.6/quotes/integrity?nonce=n3&mask=0x400&partial=1&ima_ml_entry=99',
    )
    expect(past.body.results!.ima_measurement_list_entry).toBe(0)
    const noIma = await call(a, '/v2.6/quotes/integrity?nonce=n4&mask=0x1&partial=1')
    expect(noIma.body.results!.ima_measurement_list).toBeUndefined()
    expect((await call(a, '/v2.6/quotes/integrity?nonce=n5&mask=zz&partial=1')).status).toBe(400)
    expect((await call(a, '/v2.6/quotes/integrity?nonce=n5&mask=0x1&partial=2')).status).toBe(400)
    expect(a.stats.integrityQuotes).toBe(4)
  })

  test('a client without a certificate, or with one from another CA, is refused', async () => {
    const a = fleet.agents[0]!
    await expect(call(a, '/version', { noClientCert: true })).rejects.toThrow()
    const rogue = await createAgentCert('rogue')
    await expect(call(a, '/version', { cert: rogue.certPem, key: rogue.keyPem })).rejects.toThrow()
    expect((await call(a, '/version')).status).toBe(200)
  })

  test('keys/verify before K exists; revocation notices are verified with the cert', async () => {
    const a = fleet.agents[3]!
    const v = await call(a, '/v2.6/keys/verify?challenge=abc123')
    expect(v.body).toEqual({ code: 400, status: 'Bootstrap key not yet available.', results: {} })
    const unsigned = await call(a, '/v2.6/notifications/revocation', {
      method: 'POST',
      body: { msg: '{"type": "revocation"}', signature: '' },
    })
    expect(unsigned.body).toEqual({ code: 200, status: 'Success', results: null })
    expect(a.revocations.at(-1)).toEqual({ msg: { type: 'revocation' }, verified: false })
    const rev = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const revCert = await selfSignedRsa(rev)
    a.setRevocationCert(revCert)
    const msg = '{"type": "revocation", "agent_id": "x"}'
    const signature = sign('sha256', Buffer.from(msg), {
      key: rev.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN,
    }).toString('base64')
    const ok = await call(a, '/v2.6/notifications/revocation', {
      method: 'POST',
      body: { msg, signature },
    })
    expect(ok.status).toBe(200)
    expect(a.revocations.at(-1)!.verified).toBe(true)
    const forged = await call(a, '/v2.6/notifications/revocation', {
      method: 'POST',
      body: { msg: msg.replace('x', 'y'), signature },
    })
    expect(forged.status).toBe(400)
  })
})

/** A self-signed RSA certificate for a revocation key, via openssl-free WebCrypto import. */
async function selfSignedRsa(pair: {
  privateKey: KeyObject
  publicKey: KeyObject
}): Promise<string> {
  const x509 = await import('@peculiar/x509')
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  const privateKey = await crypto.subtle.importKey(
    'pkcs8',
    pair.privateKey.export({ format: 'der', type: 'pkcs8' }),
    alg,
    true,
    ['sign'],
  )
  const publicKey = await crypto.subtle.importKey(
    'spki',
    pair.publicKey.export({ format: 'der', type: 'spki' }),
    alg,
    true,
    ['verify'],
  )
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=RevocationNotifier',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    keys: { privateKey, publicKey },
  })
  return cert.toString('pem')
}

describe('fault injection', () => {
  test('each fault is caught by verifyQuote or by the protocol', async () => {
    const a = fleet.agents[0]!
    const ak = akOf(a)
    const quote = async (nonce: string) => {
      const r = await call(a, `/v2.6/quotes/integrity?nonce=${nonce}&mask=0x8000&partial=1`)
      return String(r.body.results!.quote)
    }
    try {
      a.faults = { badSignature: 1 }
      const bad = await quote('f1')
      expect(() =>
        verifyQuote({ quote: bad, akPublic: ak, nonce: 'f1', hashAlg: 'sha256' }),
      ).toThrow(expect.objectContaining({ code: 'ERR_QUOTE_SIGNATURE' }))
      a.faults = { wrongNonce: 1 }
      const wrong = await quote('f2')
      expect(() =>
        verifyQuote({ quote: wrong, akPublic: ak, nonce: 'f2', hashAlg: 'sha256' }),
      ).toThrow(expect.objectContaining({ code: 'ERR_QUOTE_NONCE' }))
      a.faults = { pcrChange: 1 }
      const changed = verifyQuote({
        quote: await quote('f3'),
        akPublic: ak,
        nonce: 'f3',
        hashAlg: 'sha256',
      })
      // genuine quote, but PCR15 no longer equals a tpm_policy pinned to the boot value (zeros)
      expect(
        Buffer.from(changed.pcrs.get('sha256')!.get(FAULT_PCR)!).equals(Buffer.alloc(32)),
      ).toBe(false)
      a.faults = { slowMs: 150 }
      const t0 = performance.now()
      await quote('f4')
      expect(performance.now() - t0).toBeGreaterThanOrEqual(140)
      a.faults = { dead: true }
      await expect(quote('f5')).rejects.toThrow()
      expect(a.stats.faultsInjected).toBe(3)
    } finally {
      a.faults = {}
    }
    // back to healthy (PCR15 stays extended, as on a real TPM)
    const ok = verifyQuote({
      quote: await quote('f6'),
      akPublic: ak,
      nonce: 'f6',
      hashAlg: 'sha256',
    })
    expect(ok.pcrSelection[0]!.pcrs).toEqual([15, 16])
  })
})

describe('registration', () => {
  test('registers and activates against a registrar stub that checks the wire format', async () => {
    const challenges = new Map<string, string>()
    const activated: string[] = []
    const seen: string[] = []
    const stub = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const url = new URL(req.url)
        seen.push(`${req.method} ${url.pathname}`)
        const env = (code: number, results: unknown) =>
          Response.json(
            { code, status: code === 200 ? 'Success' : 'Bad', results },
            { status: code },
          )
        if (url.pathname === '/version') {
          return env(200, {
            current_version: '3.0',
            supported_versions: ['2.1', '2.2', '2.3', '2.4', '2.5', '2.6', '3.0'],
          })
        }
        const m = /^\/v2\.6\/agents\/([\w-]+)$/.exec(url.pathname)
        if (m === null) return env(404, {})
        const id = m[1]!
        const body = (await req.json()) as Record<string, unknown>
        if (req.method === 'POST') {
          const ak = parseTpm2bPublic(Buffer.from(String(body.aik_tpm), 'base64'))
          const ek = parseTpm2bPublic(Buffer.from(String(body.ek_tpm), 'base64'))
          if (ak.objectAttributes !== AK_EXPECTED_ATTRS) return env(400, {})
          if (typeof body.ekcert !== 'string' || typeof body.port !== 'number' || body.port <= 0)
            return env(400, {})
          if (
            !String(body.mtls_cert).startsWith('-----BEGIN CERTIFICATE-----') ||
            body.ip !== '127.0.0.1'
          )
            return env(400, {})
          if (!('iak_cert' in body) || body.iak_cert !== null) return env(400, {})
          const challenge = randomBytes(24)
            .toString('base64')
            .replace(/[^A-Za-z0-9]/g, 'A')
            .slice(0, 32)
          challenges.set(id, Buffer.from(challenge).toString('base64'))
          const blob = serializeCredentialBlob(
            makeCredential(ek, computeName(ak), Buffer.from(challenge)),
          )
          return env(200, { blob: Buffer.from(blob).toString('base64') })
        }
        if (req.method === 'PUT') {
          const key = challenges.get(id)
          if (key === undefined || !verifyHmacProof(key, id, String(body.auth_tag)))
            return env(400, {})
          activated.push(id)
          return env(200, {})
        }
        return env(405, {})
      },
    })
    try {
      const r = await fleet.registerAll(`http://127.0.0.1:${stub.port}`, 2)
      expect(r).toMatchObject({ ok: 4, failed: 0 })
      expect(activated.sort()).toEqual(fleet.agents.map((a) => a.uuid).sort())
      expect(fleet.agents.every((a) => a.registrarApiVersion === '2.6')).toBe(true)
      expect(seen.filter((s) => s.startsWith('PUT'))).toHaveLength(4)
    } finally {
      stub.stop(true)
    }
  })
})

describe('enrolment and the U/V key exchange', () => {
  test('enrollAgent sends the tenant body; a verifier delivering V completes K and the payload', async () => {
    const a = fleet.agents[1]!
    const server = await loadServerTls()
    let received: Record<string, unknown> | undefined
    const verifier = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      tls: { ...server, ca: ca.caCertPem, requestCert: true, rejectUnauthorized: true },
      async fetch(req) {
        const url = new URL(req.url)
        if (url.pathname === '/version') {
          return Response.json({
            code: 200,
            status: 'Success',
            results: { current_version: '2.6', supported_versions: ['2.5', '2.6'] },
          })
        }
        received = (await req.json()) as Record<string, unknown>
        // what a verifier does after the first good quote: V to the agent, RSA-OAEP-SHA1 to NK
        const pub = await call(a, '/v2.6/keys/pubkey')
        const encrypted = publicEncrypt(
          {
            key: String(pub.body.results!.pubkey),
            padding: constants.RSA_PKCS1_OAEP_PADDING,
            oaepHash: 'sha1',
          },
          Buffer.from(String(received.v), 'base64'),
        )
        await call(a, '/v2.6/keys/vkey', {
          method: 'POST',
          body: { encrypted_key: encrypted.toString('base64') },
        })
        return Response.json({ code: 200, status: 'Success', results: {} })
      },
    })
    try {
      const payload = zipSync({ 'autorun.sh': new TextEncoder().encode('#!/bin/sh\n') })
      const r = await enrollAgent({
        verifierUrl: `https://127.0.0.1:${verifier.port}`,
        tls: ca.client,
        ...simAgentIdentity(a),
        withKeys: true,
        payload,
      })
      expect(r.verifierApiVersion).toBe('2.6')
      expect(received).toMatchObject({
        cloudagent_ip: '127.0.0.1',
        cloudagent_port: a.contactPort,
        runtime_policy: '',
        mb_policy: null,
        mb_policy_name: '',
        ima_sign_verification_keys: '',
        metadata: '{}',
        revocation_key: '',
        supported_version: '2.6',
        mtls_cert: a.mtlsCertPem,
      })
      expect(JSON.parse(String(received!.tpm_policy))).toEqual({ mask: '0x0' })
      expect(a.hasKey).toBe(true)
      expect(Buffer.from(a.payload!)).toEqual(Buffer.from(payload))
      const challenge = 'Challenge123'
      const v = await call(a, `/v2.6/keys/verify?challenge=${challenge}`)
      expect(v.body.results!.hmac).toBe(createHmac('sha384', r.k!).update(challenge).digest('hex'))
    } finally {
      verifier.stop(true)
    }
  })
})

describe('addresses layout', () => {
  test('one listener serves agents at distinct 127.1.x.y addresses, routed by Host', async () => {
    const f = await startFleet({ count: 3, caCertPem: ca.caCertPem, listen: 'addresses', port: 0 })
    try {
      expect(f.agents.map((a) => a.contactIp)).toEqual([
        agentAddress(0),
        agentAddress(1),
        agentAddress(2),
      ])
      for (const a of f.agents) {
        const res = await fetch(`${f.urlOf(a)}/v2.2/agent/info`, {
          tls: {
            ca: [a.mtlsCertPem],
            cert: ca.client.cert,
            key: ca.client.key,
            checkServerIdentity: () => undefined,
          },
        } as RequestInit)
        expect(((await res.json()) as { results: { agent_uuid: string } }).results.agent_uuid).toBe(
          a.uuid,
        )
      }
      expect(f.summary().agents).toBe(3)
      expect(agentAddress(253)).toBe('127.1.0.254')
      expect(agentAddress(254)).toBe('127.1.1.1')
    } finally {
      await f.stop()
    }
  })
})

async function loadServerTls(): Promise<{ cert: string; key: string }> {
  const { readFile } = await import('node:fs/promises')
  return {
    cert: await readFile(join(dir, 'cv_ca', 'server-cert.crt'), 'utf8'),
    key: await readFile(join(dir, 'cv_ca', 'server-private.pem'), 'utf8'),
  }
}
