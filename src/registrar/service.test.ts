/**
 * RegistrarService on every database target, with software EKs/AKs (`software-agent.ts`) and the
 * swtpm EK certificate fixtures (`test/fixtures/ek`).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { databaseTargets } from '../../test/support/databases.ts'
import { sql } from 'drizzle-orm'
import { type KeylimeDatabase, openDatabase, registrarmain } from '../db/index.ts'
import { getLogger } from '../log/logger.ts'
import { loadCertStore } from '../tpm/cert-store.ts'
import { AK_EXPECTED_ATTRS, TPMA_OBJECT } from '../tpm/constants.ts'
import { isRegistrarError, type RegistrarErrorCode } from './errors.ts'
import { RegistrarService, type TpmIdentityMode } from './service.ts'
import { makeSoftwareAk, makeSoftwareEk, SoftwareAgent } from '../../test/support/software-agent.ts'

const FIX = join(import.meta.dir, '../../test/fixtures/ek')
const NOW = new Date('2027-01-01T00:00:00Z')
const store = loadCertStore(join(FIX, 'store'))
const intermediatePem = readFileSync(join(FIX, 'intermediate.pem'), 'utf8')
const ekRsaDer = readFileSync(join(FIX, 'ek-rsa2048.der'))
const ekRsaPub = readFileSync(join(FIX, 'ek-rsa2048.pub'))
const ekEccPub = readFileSync(join(FIX, 'ek-ecc384.pub'))
const log = getLogger('registrar-test')

// Key generation dominates; make the keys once.
const rsaEk = makeSoftwareEk('rsa')
const eccEk = makeSoftwareEk('ecc')
const rsaAk = makeSoftwareAk('rsa')
const eccAk = makeSoftwareAk('ecc')
const eccAk2 = makeSoftwareAk('ecc')
const eccEk2 = makeSoftwareEk('ecc')

function pem(der: Uint8Array): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`
}

async function rejects(
  p: Promise<unknown>,
  code: RegistrarErrorCode,
  status: number,
): Promise<string> {
  try {
    await p
  } catch (e) {
    if (!isRegistrarError(e)) throw e
    expect(e.code).toBe(code)
    expect(e.status).toBe(status)
    return e.message
  }
  throw new Error(`expected ${code}`)
}

for (const target of databaseTargets()) {
  describe(`RegistrarService on ${target.name}`, () => {
    let kdb: KeylimeDatabase
    const service = (
      tpmIdentity: TpmIdentityMode = 'default',
      action: 'warn' | 'reject' = 'warn',
    ) =>
      new RegistrarService({
        database: kdb,
        log,
        certStore: { get: () => store },
        tpmIdentity,
        malformedCertAction: action,
        now: () => NOW,
      })
    const count = async (id: string) =>
      (await kdb.db.select().from(registrarmain)).filter((r) => r.agent_id === id).length

    beforeAll(async () => {
      kdb = await target.open()
    })
    afterAll(async () => {
      await kdb.close()
    })

    for (const [label, ek, ak] of [
      ['RSA EK + RSA AK', rsaEk, rsaAk],
      ['ECC EK + ECC AK', eccEk, eccAk],
    ] as const) {
      test(`${label}: register, activate, show`, async () => {
        const svc = service()
        const id = `agent-${ek.type}-${ak.type}`
        const agent = new SoftwareAgent(ek, ak)
        const { blob } = await svc.register(id, agent.body(), '2.6')
        await rejects(svc.show(id), 'ERR_REGISTRAR_AGENT_NOT_ACTIVE', 404)
        await svc.activate(id, { auth_tag: agent.authTag(id, blob) })
        const shown = await svc.show(id)
        expect(shown.agent_id).toBe(id)
        expect(shown.aik_tpm).toBe(Buffer.from(ak.tpm2b).toString('base64'))
        expect(shown.ek_tpm).toBe(Buffer.from(ek.tpm2b).toString('base64'))
        expect(shown.ekcert).toBeNull()
        expect(shown.mtls_cert).toBe('disabled')
        expect(shown.ip).toBe('127.0.0.1')
        expect(shown.port).toBe(9002)
        expect(shown.regcount).toBe(1)
        expect(shown.ek_cert_verdict).toBe('absent')
        expect(await svc.list()).toContain(id)
        const [row] = (await kdb.db.select().from(registrarmain)).filter((r) => r.agent_id === id)
        // key = base64 of a 32-character [A-Za-z0-9] challenge
        expect(Buffer.from(row!.key!, 'base64').toString()).toMatch(/^[A-Za-z0-9]{32}$/)
      })
    }

    test('a wrong auth_tag is 400 and changes nothing, before and after activation', async () => {
      const svc = service()
      const agent = new SoftwareAgent(eccEk, eccAk)
      const { blob } = await svc.register('wrong-tag', agent.body(), '2.6')
      const msg = await rejects(
        svc.activate('wrong-tag', { auth_tag: 'ab'.repeat(48) }),
        'ERR_REGISTRAR_AUTH_TAG',
        400,
      )
      expect(msg).not.toContain('abab')
      expect(await count('wrong-tag')).toBe(1)
      // The real agent still activates with its proof; a wrong tag afterwards changes nothing.
      await svc.activate('wrong-tag', { auth_tag: agent.authTag('wrong-tag', blob) })
      await rejects(
        svc.activate('wrong-tag', { auth_tag: 'cd'.repeat(48) }),
        'ERR_REGISTRAR_AUTH_TAG',
        400,
      )
      expect((await svc.show('wrong-tag')).regcount).toBe(1)
      // Replaying the right proof is harmless.
      await svc.activate('wrong-tag', { auth_tag: agent.authTag('wrong-tag', blob) })
    })

    test('activation needs a string auth_tag; an unknown id is 404', async () => {
      const svc = service()
      const agent = new SoftwareAgent(eccEk, eccAk)
      await svc.register('no-tag', agent.body(), '2.6')
      await rejects(svc.activate('no-tag', {}), 'ERR_REGISTRAR_INVALID_DATA', 400)
      await rejects(svc.activate('no-tag', { auth_tag: 42 }), 'ERR_REGISTRAR_INVALID_DATA', 400)
      expect(await count('no-tag')).toBe(1) // a malformed request does not delete
      await rejects(
        svc.activate('nobody', { auth_tag: 'ab' }),
        'ERR_REGISTRAR_AGENT_NOT_FOUND',
        404,
      )
      await rejects(svc.show('nobody'), 'ERR_REGISTRAR_AGENT_NOT_FOUND', 404)
      await rejects(svc.remove('nobody'), 'ERR_REGISTRAR_AGENT_NOT_FOUND', 404)
    })

    test('re-registration of an activated agent is staged until its new challenge is answered', async () => {
      const svc = service()
      const agent = new SoftwareAgent(eccEk, eccAk)
      const first = await svc.register('rereg', agent.body(), '2.6')
      await svc.activate('rereg', { auth_tag: agent.authTag('rereg', first.blob) })
      const mtls = pem(ekRsaDer) // any certificate will do as an mTLS cert
      const second = await svc.register(
        'rereg',
        agent.body({ ip: '10.0.0.7', port: '9003', mtls_cert: mtls }),
        '2.6',
      )
      expect(second.blob).not.toBe(first.blob)
      // Until the new challenge is answered the activated record is what it was.
      const before = await svc.show('rereg')
      expect([before.regcount, before.ip, before.port, before.mtls_cert]).toEqual([
        1,
        '127.0.0.1',
        9002,
        'disabled',
      ])
      await rejects(
        svc
          .activate('rereg', { auth_tag: agent.authTag('rereg', first.blob) })
          .then(() => svc.activate('rereg', { auth_tag: 'ef'.repeat(48) })),
        'ERR_REGISTRAR_AUTH_TAG',
        400,
      )
      await svc.activate('rereg', { auth_tag: agent.authTag('rereg', second.blob) })
      const shown = await svc.show('rereg')
      expect(shown.regcount).toBe(2)
      expect(shown.ip).toBe('10.0.0.7')
      expect(shown.port).toBe(9003)
      expect(shown.mtls_cert).toBe(mtls)
      // The staged challenge is used up: its proof now only replays the current key.
      await svc.activate('rereg', { auth_tag: agent.authTag('rereg', second.blob) })
      expect((await svc.show('rereg')).regcount).toBe(2)
    })

    test('re-registration with a different AK or EK is 403 and changes nothing', async () => {
      const svc = service()
      const agent = new SoftwareAgent(eccEk, eccAk)
      const { blob } = await svc.register('spoofed', agent.body(), '2.6')
      await svc.activate('spoofed', { auth_tag: agent.authTag('spoofed', blob) })
      const otherAk = new SoftwareAgent(eccEk, eccAk2)
      const m = await rejects(
        svc.register('spoofed', otherAk.body(), '2.6'),
        'ERR_REGISTRAR_IDENTITY_CHANGED',
        403,
      )
      expect(m).toContain('aik_tpm')
      const otherEk = new SoftwareAgent(eccEk2, eccAk)
      expect(
        await rejects(
          svc.register('spoofed', otherEk.body(), '2.6'),
          'ERR_REGISTRAR_IDENTITY_CHANGED',
          403,
        ),
      ).toContain('ek_tpm')
      const shown = await svc.show('spoofed')
      expect(shown.regcount).toBe(1)
      expect(shown.aik_tpm).toBe(Buffer.from(eccAk.tpm2b).toString('base64'))
    })

    test('AK attributes are enforced (400, nothing written)', async () => {
      const svc = service()
      const cases = [
        { attrs: AK_EXPECTED_ATTRS | TPMA_OBJECT.decrypt, want: 'decrypt' },
        { attrs: AK_EXPECTED_ATTRS & ~TPMA_OBJECT.fixedTPM, want: 'fixedTPM' },
        { attrs: AK_EXPECTED_ATTRS & ~TPMA_OBJECT.restricted, want: 'restricted' },
        {
          attrs: AK_EXPECTED_ATTRS & ~TPMA_OBJECT.sensitiveDataOrigin,
          want: 'sensitiveDataOrigin',
        },
      ]
      for (const c of cases) {
        const agent = new SoftwareAgent(eccEk, makeSoftwareAk('ecc', c.attrs))
        const m = await rejects(
          svc.register('bad-ak', agent.body(), '2.6'),
          'ERR_REGISTRAR_AK_ATTRIBUTES',
          400,
        )
        expect(m).toContain(c.want)
        expect(m).toStartWith('Could not register agent with invalid data')
      }
      expect(await count('bad-ak')).toBe(0)
    })

    test('malformed fields are 400 naming the field; nothing written', async () => {
      const svc = service()
      const agent = new SoftwareAgent(eccEk, eccAk)
      const ak = Buffer.from(eccAk.tpm2b)
      const cases: [Record<string, unknown>, string][] = [
        [{ aik_tpm: undefined }, 'aik_tpm is required'],
        [{ aik_tpm: '***' }, 'aik_tpm is not valid base64'],
        [{ aik_tpm: 12 }, 'aik_tpm must be a base64 string'],
        [
          { aik_tpm: ak.subarray(0, ak.length - 3).toString('base64') },
          'aik_tpm must be a valid TPM2B_PUBLIC',
        ],
        [
          { aik_tpm: Buffer.concat([ak, Buffer.from([0])]).toString('base64') },
          'aik_tpm must be a valid TPM2B_PUBLIC',
        ],
        [{ aik_tpm: 'A'.repeat(8000) }, 'aik_tpm is longer than'],
        [
          { ek_tpm: Buffer.from([0, 2, 0, 1]).toString('base64') },
          'ek_tpm must be a valid TPM2B_PUBLIC',
        ],
        [
          { ek_tpm: Buffer.from(eccAk.tpm2b).toString('base64') },
          'ek_tpm must be a restricted decryption key',
        ],
        [{ ek_tpm: undefined }, 'ek_tpm is required'],
        [{ ekcert: 'not a cert' }, 'ekcert must be a valid X.509 certificate'],
        [
          { mtls_cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' },
          'mtls_cert must be a valid X.509',
        ],
        [{ port: 70000 }, 'port must be an integer'],
        [{ port: 'x' }, 'port must be an integer'],
        [{ ip: 'a b' }, 'ip must be'],
        [{ iak_tpm: Buffer.from(eccAk.tpm2b).toString('base64') }, 'must be provided together'],
      ]
      for (const [patch, want] of cases) {
        const body = agent.body(patch)
        for (const [k, v] of Object.entries(patch)) if (v === undefined) delete body[k]
        const m = await rejects(
          svc.register('malformed', body, '2.6'),
          isIak(want) ? 'ERR_REGISTRAR_IAK' : 'ERR_REGISTRAR_INVALID_DATA',
          400,
        )
        expect(m).toContain(want)
      }
      expect(await count('malformed')).toBe(0)
      function isIak(w: string) {
        return w.includes('together')
      }
    })

    test('agent ids follow [\\w.-]+ and at most 80 characters', async () => {
      const svc = service()
      const agent = new SoftwareAgent(eccEk, eccAk)
      for (const id of [
        '',
        'a b',
        'a/b',
        "x'; drop table registrarmain; --",
        'é',
        'a'.repeat(81),
        42,
      ]) {
        await rejects(svc.register(id, agent.body(), '2.6'), 'ERR_REGISTRAR_AGENT_ID', 400)
      }
      await svc.register('A.b_c-9'.padEnd(80, 'x'), agent.body(), '2.6')
    })

    test('EK certificate: trusted with the agent-sent chain; verdict and TPM identity stored', async () => {
      const svc = service()
      const ak = makeSoftwareAk('ecc')
      const body = {
        aik_tpm: Buffer.from(ak.tpm2b).toString('base64'),
        ek_tpm: ekRsaPub.toString('base64'),
        ekcert: pem(ekRsaDer) + intermediatePem, // rust-keylime: EK cert followed by the NV chain
      }
      const { blob } = await svc.register('with-ekcert', body, '2.6')
      expect(blob.length).toBeGreaterThan(100)
      const [row] = (await kdb.db.select().from(registrarmain)).filter(
        (r) => r.agent_id === 'with-ekcert',
      )
      expect(row!.ek_cert_verdict).toBe('trusted')
      expect(row!.tpm_manufacturer).toBe('id:00001014')
      expect(row!.tpm_model).toBe('swtpm')
      expect(row!.ekcert).toBe(Buffer.from(ekRsaDer).toString('base64')) // stored as b64 DER, chain dropped
      expect(row!.ek_cert_checked_at).toBe(Math.floor(NOW.getTime() / 1000))
    })

    test('EK certificate without its intermediate: untrusted but registered under tpm_identity=default', async () => {
      const body = {
        aik_tpm: Buffer.from(eccAk.tpm2b).toString('base64'),
        ek_tpm: ekRsaPub.toString('base64'),
        ekcert: Buffer.from(ekRsaDer).toString('base64'),
      }
      await service('default').register('untrusted-ek', body, '2.6')
      const [row] = (await kdb.db.select().from(registrarmain)).filter(
        (r) => r.agent_id === 'untrusted-ek',
      )
      expect(row!.ek_cert_verdict).toBe('untrusted')
      expect(row!.ek_cert_detail).toContain('swtpm-localca')
      // tpm_identity = ek_cert rejects it, and nothing changes.
      const m = await rejects(
        service('ek_cert').register('untrusted-ek-2', body, '2.6'),
        'ERR_REGISTRAR_EK_CERT',
        400,
      )
      expect(m).toContain('untrusted')
      expect(await count('untrusted-ek-2')).toBe(0)
      await rejects(
        service('ek_cert').register('no-ekcert', new SoftwareAgent(eccEk, eccAk).body(), '2.6'),
        'ERR_REGISTRAR_EK_CERT',
        400,
      )
      await service('ek_cert').register(
        'trusted-ek',
        { ...body, ekcert: pem(ekRsaDer) + intermediatePem },
        '2.6',
      )
    })

    test('EK certificate for another key is 400', async () => {
      const body = {
        aik_tpm: Buffer.from(eccAk.tpm2b).toString('base64'),
        ek_tpm: ekEccPub.toString('base64'),
        ekcert: Buffer.from(ekRsaDer).toString('base64'),
      }
      const m = await rejects(
        service().register('mismatch', body, '2.6'),
        'ERR_REGISTRAR_EK_CERT',
        400,
      )
      expect(m).toContain('ek_tpm must contain the same public key found in ekcert')
      expect(await count('mismatch')).toBe(0)
    })

    test('malformed_cert_action = reject refuses non-DER certificates', async () => {
      const nuvoton = readFileSync(join(FIX, 'nuvoton-npct75x.der')).toString('base64')
      const agent = new SoftwareAgent(eccEk, eccAk)
      const m = await rejects(
        service('default', 'reject').register('nonder', agent.body({ mtls_cert: nuvoton }), '2.6'),
        'ERR_REGISTRAR_INVALID_DATA',
        400,
      )
      expect(m).toContain('not strict DER')
      await service('default', 'warn').register('nonder', agent.body({ mtls_cert: nuvoton }), '2.6')
    })

    test('concurrent registrations of one new id: one identity wins, the others get 403', async () => {
      const svc = service()
      const aks = [eccAk, eccAk2, makeSoftwareAk('ecc'), makeSoftwareAk('ecc')]
      // One service per request: separate in-process mutexes, as separate processes would have,
      // so only the database lock serializes them.
      const results = await Promise.allSettled(
        aks.map((ak) => service().register('race', new SoftwareAgent(eccEk, ak).body(), '2.6')),
      )
      expect(results.filter((r) => r.status === 'fulfilled').length).toBe(1)
      for (const r of results) {
        if (r.status === 'rejected')
          expect(isRegistrarError(r.reason, 'ERR_REGISTRAR_IDENTITY_CHANGED')).toBe(true)
      }
      // Same identity, many times at once: all succeed, regcount counts each, the last blob activates.
      const agent = new SoftwareAgent(eccEk, eccAk)
      const blobs = await Promise.all(
        Array.from({ length: 8 }, () => svc.register('race-same', agent.body(), '2.6')),
      )
      const [row] = (await kdb.db.select().from(registrarmain)).filter(
        (r) => r.agent_id === 'race-same',
      )
      expect(row!.regcount).toBe(8)
      await svc.activate('race-same', { auth_tag: agent.authTag('race-same', blobs[7]!.blob) })
      expect((await svc.show('race-same')).regcount).toBe(8)
    })

    test.skipIf(target.name !== 'postgresql')(
      'two processes (two pools on one database) serialize registrations of one id',
      async () => {
        const location = await target.freshLocation()
        const handles = await Promise.all(
          [0, 1].map(() => openDatabase({ url: location.url, keylimeDir: location.keylimeDir })),
        )
        try {
          // Warm every pool connection so transactions really overlap.
          await Promise.all(
            handles.flatMap((h) =>
              Array.from({ length: 6 }, () => h.db.execute(sql`select pg_sleep(0.02)`)),
            ),
          )
          const services = handles.map(
            (h) =>
              new RegistrarService({
                database: h,
                log,
                certStore: { get: () => store },
                now: () => NOW,
              }),
          )
          const aks = [
            eccAk,
            eccAk2,
            makeSoftwareAk('ecc'),
            makeSoftwareAk('ecc'),
            makeSoftwareAk('ecc'),
            makeSoftwareAk('ecc'),
          ]
          for (let round = 0; round < 5; round++) {
            const id = `xproc-${round}`
            const results = await Promise.allSettled(
              aks.map((ak, i) =>
                services[i % 2]!.register(id, new SoftwareAgent(eccEk, ak).body(), '2.6'),
              ),
            )
            expect(results.filter((r) => r.status === 'fulfilled').length).toBe(1)
            for (const r of results) {
              if (r.status === 'rejected')
                expect(isRegistrarError(r.reason, 'ERR_REGISTRAR_IDENTITY_CHANGED')).toBe(true)
            }
          }
        } finally {
          await Promise.all(handles.map((h) => h.close()))
          await location.drop()
        }
      },
    )

    test('remove deletes; list reflects it', async () => {
      const svc = service()
      const agent = new SoftwareAgent(eccEk, eccAk)
      await svc.register('to-delete', agent.body(), '2.6')
      expect(await svc.list()).toContain('to-delete')
      await svc.remove('to-delete')
      expect(await svc.list()).not.toContain('to-delete')
      await rejects(svc.show('to-delete'), 'ERR_REGISTRAR_AGENT_NOT_FOUND', 404)
    })
  })
}
