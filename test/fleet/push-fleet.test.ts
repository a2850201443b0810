/**
 * The push fleet simulator (test/support/fleet/push-*.ts) against our verifier over real TLS on
 * PGlite: the soft TPM's TPM2_Certify proof verifies, a clean agent attests and passes, each
 * fault shows at the verifier as it should (failed verification, 401, nothing at all), and
 * the agents' IMA lists grow round by round and still pass.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import { verifyCertify } from '../../src/tpm/verify-certify.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { databaseTargets } from '../support/databases.ts'
import { enrolmentBody } from '../support/fleet/enroll-agent.ts'
import { type PushFleet, startPushFleet } from '../support/fleet/push-fleet.ts'
import { FAULT_PCR } from '../support/fleet/sim-agent.ts'
import { generateSoftTpmKey, SoftTpm } from '../support/fleet/soft-tpm.ts'
import { createTestCa, startTestVerifier, type TestCa } from '../support/verifier-harness.ts'

describe('SoftTpm.certifyAk', () => {
  for (const kind of ['rsa', 'ecc'] as const) {
    test(`${kind}: the proof verifies as the verifier checks it, over the challenge only`, () => {
      const tpm = new SoftTpm({
        keys: {
          ek: generateSoftTpmKey('ecc'),
          ak: generateSoftTpmKey(kind),
          nk: generateSoftTpmKey('rsa'),
        },
      })
      const challenge = new Uint8Array(16).fill(7)
      const proof = tpm.certifyAk(challenge)
      const params = { ...proof, signer: tpm.akPublic, certified: tpm.akPublic }
      expect(verifyCertify({ ...params, qualifyingData: challenge }).hash).toBe('sha256')
      expect(() => verifyCertify({ ...params, qualifyingData: new Uint8Array(16) })).toThrow()
    })
  }
})

describe('push fleet against our verifier (PGlite)', () => {
  let kdb: KeylimeDatabase
  let ca: TestCa
  let v: VerifierHandle
  let fleet: PushFleet
  let policyReads = 0

  beforeAll(async () => {
    ca = await createTestCa()
    kdb = await databaseTargets()[0]!.open()
    v = await startTestVerifier(
      kdb,
      ca,
      { quote_interval: '1', session_create_rate_limit_per_ip: '0' },
      { checkWorkers: 1 },
    )
    fleet = startPushFleet({
      count: 6,
      keyType: 'ecc',
      verifierUrl: v.servers[0]!.url,
      caCertPem: readFileSync(join(ca.caDir, 'cacert.crt'), 'utf8'),
      intervalS: 1,
      imaPerRound: 3,
      imaRounds: 20,
      faults: ['bad-signature', 'pcr-change', 'stale-evidence', 'expired-token', 'silent'].map(
        (fault) => ({ fault: fault as never, fraction: 1 / 6 }),
      ),
    })
    const a0 = fleet.agents[0]!
    const pcr15 = Buffer.from(a0.tpm.readPcr(a0.hashAlg, FAULT_PCR)).toString('hex')
    for (const a of fleet.agents) {
      await v.service.agents.enrol(
        a.uuid,
        enrolmentBody(
          {
            ip: '127.0.0.1',
            port: 9002,
            akTpm: Buffer.from(a.akTpm2b).toString('base64'),
            mtlsCert: '',
            acceptHashAlgs: ['sha256'],
            tpmPolicy: JSON.stringify({ [String(FAULT_PCR)]: [pcr15], mask: '0x8000' }),
            runtimePolicy: Buffer.from(fleet.imaLog!.runtimePolicy()).toString('base64'),
          },
          { mtls_cert: null },
        ),
      )
    }
    const read = v.store.policyVersions
    v.store.policyVersions = () => {
      policyReads++
      return read()
    }
    fleet.start()
    await Bun.sleep(4500)
    fleet.stop()
    await v.service.attestations!.idle()
  }, 60_000)

  afterAll(async () => {
    fleet?.stop()
    await v?.stop(200)
    await kdb?.close()
  })

  test('each agent ends as its fault says', async () => {
    const byFault = new Map(fleet.agents.map((a) => [a.fault ?? 'none', a]))
    const row = async (f: string) => (await v.store.getAgent(byFault.get(f)!.uuid))!
    const clean = await row('none')
    // the clean agent attested several rounds, its IMA list growing 3 entries a round
    expect(byFault.get('none')!.accepted).toBeGreaterThanOrEqual(2)
    expect(clean.attestation_count).toBeGreaterThanOrEqual(2)
    expect(clean.consecutive_attestation_failures ?? 0).toBe(0)
    const last = await v.store.attestations.lastPassed(clean.agent_id)
    const ima = last?.items.find((i) => i.evidence_type === 'ima_log')
    expect(
      (ima?.chosen_parameters__starting_offset ?? 0) + (ima?.results__certified_entry_count ?? 0),
    ).toBeGreaterThan(4)
    for (const f of ['bad-signature', 'pcr-change', 'stale-evidence']) {
      expect(byFault.get(f)!.accepted).toBeGreaterThanOrEqual(1)
      expect((await row(f)).consecutive_attestation_failures).toBeGreaterThanOrEqual(1)
      expect((await row(f)).attestation_count).toBe(0)
    }
    // a token the verifier does not hold: 401 at the capabilities, never an attestation
    expect(byFault.get('expired-token')!.accepted).toBe(0)
    expect(fleet.errors.get('capabilities_401') ?? 0).toBeGreaterThanOrEqual(1)
    expect(byFault.get('silent')!.accepted).toBe(0)
    expect((await row('silent')).attestation_count).toBe(0)
    expect(fleet.lateness.count).toBeGreaterThanOrEqual(1)
  })

  test('verifications read every policy version at most about once a second, not once each', async () => {
    let verified = 0
    for (const a of fleet.agents) {
      const r = (await v.store.getAgent(a.uuid))!
      verified += (r.attestation_count ?? 0) + (r.consecutive_attestation_failures ?? 0)
    }
    // each reads every policy row: once per verification made each verification O(agents)
    expect(verified).toBeGreaterThan(8)
    expect(policyReads).toBeLessThanOrEqual(8)
  })
})
