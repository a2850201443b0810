/**
 * `POST /verify/evidence` (keylime-api.md §1.4) over the verifier's API with the REAL logs: a soft
 * TPM whose PCRs were set by replaying the guest's IMA list (`test/fixtures/ima/vm/b`) and OVMF
 * event log (`test/fixtures/mb/vm-plain`) quotes them, and the evidence carries the logs with
 * policies made by our own tools. Proves:
 *
 * - `ima_measurement_list` + `runtime_policy` (from `keylime policy create runtime`): valid true,
 *   every entry verified; one digest changed: valid false with the path in the failure context;
 * - `mb_log` + `mb_policy` (from `keylime policy create measured-boot -i`, verifier policy
 *   `example`): valid true; a changed kernel digest: valid false naming the event; a malformed log:
 *   valid false with a typed parser failure;
 * - 400 for missing parameters and for a missing policy (`default.missing_param`, `.missing_policy`).
 *
 * `test/verify-evidence-upstream.test.ts` compares answers with upstream's, case by case.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateSoftTpmKey, SoftTpm } from './support/fleet/soft-tpm.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { replayImaList } from '../src/ima/index.ts'
import { runPolicyCreateRuntime } from '../src/policy-tools/index.ts'
import { runPolicyCreateMeasuredBoot } from '../src/policy-tools/create-refstate-cli.ts'
import { parseEventLog, replayEventLog } from '../src/mb/index.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { createTestCa, startTestVerifier } from './support/verifier-harness.ts'
import { databaseTargets } from './support/databases.ts'

const IMA_PATH = join(import.meta.dir, 'fixtures/ima/vm/b/ascii_runtime_measurements')
const IMA_LOG = readFileSync(IMA_PATH, 'utf8')
const MB_PATH = join(import.meta.dir, 'fixtures/mb/vm-plain/binary_bios_measurements')
const MB_LOG = readFileSync(MB_PATH)
const TRUNCATED = readFileSync(join(import.meta.dir, 'fixtures/mb/synthetic/truncated.bin'))

/** Output of a CLI tool run in-process. */
async function runTool(
  fn: (argv: string[], ctx: Parameters<typeof runPolicyCreateRuntime>[1]) => Promise<number>,
  argv: string[],
): Promise<string> {
  let out = ''
  let err = ''
  const rc = await fn(argv, {
    cwd: mkdtempSync(join(tmpdir(), 'kl-evidence-')),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  })
  if (rc !== 0) throw new Error(`tool failed (${rc}): ${err}`)
  return out
}

/** `results` of the evidence answer. */
interface EvidenceResults {
  valid: boolean
  claims: Record<string, unknown>
  failures: { type: string; context: Record<string, unknown> }[]
}

for (const target of databaseTargets()) {
  describe(`POST /verify/evidence with real logs (${target.name})`, () => {
    let kdb: KeylimeDatabase
    let verifier: VerifierHandle
    let tpm: SoftTpm
    let runtimePolicy: Record<string, unknown> & { digests: Record<string, string[]> }
    let refstate: { kernels: Record<string, string>[] }

    /** Base TPM data: a fresh quote of `pcrs` with `nonce`. */
    const tpmData = (nonce: string, pcrs: number[]): Record<string, unknown> => ({
      quote: tpm.quote(nonce, pcrs).quote,
      nonce,
      hash_alg: 'sha256',
      tpm_ek: Buffer.from(tpm.ekTpm2b).toString('base64'),
      tpm_ak: Buffer.from(tpm.akTpm2b).toString('base64'),
    })
    const post = async (body: unknown) => {
      const res = await verifier.app.request('/v2.5/verify/evidence', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      const j = (await res.json()) as { code: number; results: EvidenceResults }
      expect(j.code).toBe(res.status)
      return { status: res.status, results: j.results }
    }
    const MB_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14]

    beforeAll(async () => {
      kdb = await target.open()
      verifier = await startTestVerifier(kdb, await createTestCa(), {
        measured_boot_policy_name: 'example',
        // upstream evaluates a /verify/evidence refstate only with `always` (count is -1)
        measured_boot_evaluate: 'always',
      })
      tpm = new SoftTpm({
        keys: {
          ek: generateSoftTpmKey('ecc'),
          ak: generateSoftTpmKey('ecc'),
          nk: generateSoftTpmKey('rsa'),
        },
        hashAlg: 'sha256',
      })
      tpm.restorePcr('sha256', 10, replayImaList(IMA_LOG, ['sha256']).pcr10.get('sha256')!)
      const mb = replayEventLog(parseEventLog(MB_LOG)).pcrs.get('sha256')!
      for (let n = 0; n <= 9; n++) tpm.restorePcr('sha256', n, mb.get(n)!)
      runtimePolicy = JSON.parse(
        await runTool(runPolicyCreateRuntime, ['-m', IMA_PATH, '-o', '/dev/stdout']),
      )
      refstate = JSON.parse(
        await runTool(runPolicyCreateMeasuredBoot, ['-e', MB_PATH, '-i', '-o', '-']),
      )
    }, 30_000)

    afterAll(async () => {
      await verifier?.stop(200)
      await kdb?.close()
    })

    test('IMA: the real list against the policy made from it is valid', async () => {
      const r = await post({
        type: 'tpm',
        data: {
          ...tpmData('imaok1', [10]),
          ima_measurement_list: IMA_LOG,
          runtime_policy: JSON.stringify(runtimePolicy),
        },
      })
      expect(r.status).toBe(200)
      expect(r.results.failures).toEqual([])
      expect(r.results.valid).toBe(true)
      // upstream's claims: the request's data, echoed
      expect(r.results.claims.ima_measurement_list).toBe(IMA_LOG)
    })

    test('IMA: one changed digest is invalid, with the path', async () => {
      const changed = structuredClone(runtimePolicy)
      changed.digests['/etc/hostname'] = ['ab'.repeat(32)]
      const r = await post({
        type: 'tpm',
        data: {
          ...tpmData('imabad1', [10]),
          ima_measurement_list: IMA_LOG,
          runtime_policy: JSON.stringify(changed),
        },
      })
      expect(r.status).toBe(200)
      expect(r.results.valid).toBe(false)
      expect(r.results.failures.map((f) => f.type)).toEqual([
        'ima.validation.ima-ng.runtime_policy_hash',
      ])
      expect(r.results.failures[0]!.context.path).toBe('/etc/hostname')
    })

    test('IMA: a list that does not match the quoted PCR 10 is invalid', async () => {
      const a = readFileSync(IMA_PATH.replace('/b/', '/a/'), 'utf8')
      const r = await post({
        type: 'tpm',
        data: {
          ...tpmData('imapcr1', [10]),
          ima_measurement_list: a,
          runtime_policy: JSON.stringify(runtimePolicy),
        },
      })
      expect(r.results.valid).toBe(false)
      expect(r.results.failures.map((f) => f.type)).toContain('ima.pcr_mismatch')
    })

    test('MB: the real OVMF log against the refstate made from it is valid', async () => {
      const r = await post({
        type: 'tpm',
        data: {
          ...tpmData('mbok1', MB_PCRS),
          mb_log: MB_LOG.toString('base64'),
          mb_policy: JSON.stringify(refstate),
        },
      })
      expect(r.status).toBe(200)
      expect(r.results.failures).toEqual([])
      expect(r.results.valid).toBe(true)
    })

    test('MB: a changed kernel digest is invalid, naming the event', async () => {
      const kernel = structuredClone(refstate)
      kernel.kernels[0]!.kernel_authcode_sha256 = `0x${'33'.repeat(32)}`
      const r = await post({
        type: 'tpm',
        data: {
          ...tpmData('mbbad1', MB_PCRS),
          mb_log: MB_LOG.toString('base64'),
          mb_policy: JSON.stringify(kernel),
        },
      })
      expect(r.status).toBe(200)
      expect(r.results.valid).toBe(false)
      expect(r.results.failures.map((f) => f.type)).toEqual(['measured_boot.policy_example'])
      expect(String(r.results.failures[0]!.context.reason)).toContain(
        'event 10 (PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION)',
      )
    })

    test('MB: a malformed log is invalid with a typed parser failure', async () => {
      const r = await post({
        type: 'tpm',
        data: {
          ...tpmData('mbmal1', MB_PCRS),
          mb_log: TRUNCATED.toString('base64'),
          mb_policy: JSON.stringify(refstate),
        },
      })
      expect(r.status).toBe(200)
      expect(r.results.valid).toBe(false)
      expect(r.results.failures[0]!.type).toBe('measured_boot.parser.tpm2_eventlog.error')
      expect(String(r.results.failures[0]!.context.code)).toMatch(/^ERR_MB_/)
    })

    test('400 for missing parameters and for no policy, as upstream', async () => {
      const full = { ...tpmData('miss1', [10]), runtime_policy: JSON.stringify(runtimePolicy) }
      for (const k of ['quote', 'nonce', 'hash_alg', 'tpm_ek', 'tpm_ak']) {
        const data: Record<string, unknown> = { ...full }
        delete data[k]
        const r = await post({ type: 'tpm', data })
        expect(r.status, k).toBe(400)
        expect(r.results.valid).toBe(false)
        expect(r.results.failures).toEqual([
          { type: 'default.missing_param', context: { message: `missing parameter "${k}"` } },
        ])
      }
      const { runtime_policy: _unused, ...noPolicy } = full
      const r = await post({ type: 'tpm', data: noPolicy })
      expect(r.status).toBe(400)
      expect(r.results.failures.map((f) => f.type)).toEqual(['default.missing_policy'])
    })
  })
}
