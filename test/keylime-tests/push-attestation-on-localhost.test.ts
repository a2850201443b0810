/**
 * Mirror of keylime-tests `functional/push-attestation-on-localhost`, and on PostgreSQL of
 * `functional/push-model-attestation-with-postgresql-db` (RedHat-SP-Security/keylime-tests
 * `ab163590314546d90cdcd7a89e56d3d0b562f4ec`), with test/support/push-bed.ts: verifier,
 * registrar, our push agent on swtpm (upstream: rust-keylime's `keylime_push_model_agent`).
 *
 * 1. The agent registers; a runtime policy is made from a measurement list holding two scripts;
 *    `keylime_tenant -u <id> --runtime-policy policy.json -c add --push-model`; `cvlist` names
 *    the agent; the verifier logs "Attestation N for agent '<id>' successfully passed
 *    verification".
 * 2. Running the two allowed scripts (their lines appended to the agent's IMA list, PCR 10
 *    extended as the kernel does) → attestation N+1 passes too.
 * 3. Running a script not in the policy → "Attestation M for agent '<id>' failed verification"
 *    and "File not found in allowlist: <path>" in the verifier log.
 *
 * PostgreSQL (with `TEST_DATABASE_URL`): the agent id is 64 hex digits (`hash_ek`), the longest
 * rust-keylime sends, and must pass without a truncation error (upstream's
 * `StringDataRightTruncation` check). Not mirrored: the kernel's IMA (a list written by the test),
 * the PostgreSQL server set-up (`setup.psql`: users and databases; here one database).
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runPolicyCreateRuntime } from '../../src/policy-tools/index.ts'
import { databaseTargets } from '../support/databases.ts'
import { imaNgLine, testScript } from '../support/ima-ng-line.ts'
import { type PushBed, startPushBed } from '../support/push-bed.ts'
import { missingSwtpmTools } from '../support/swtpm.ts'
import { until } from '../support/until.ts'

const missing = missingSwtpmTools(['tpm2_pcrextend'])
if (missing.length > 0) console.log(`skipping push-attestation-on-localhost: ${missing.join(', ')}`)

const script = testScript
const GOOD = [script('good-script1'), script('good-script2')]
const BAD = script('bad-script')
const INIT = script('init')

let port = 19530

for (const target of databaseTargets()) {
  const agentId =
    target.name === 'pglite'
      ? 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
      : createHash('sha256').update('ek').digest('hex')
  describe.skipIf(missing.length > 0)(
    `keylime-tests functional/push-attestation-on-localhost (${target.name})`,
    () => {
      let bed: PushBed
      const verifierPort = port++

      /** Runs a script (IMA measures it). */
      const run = (s: { path: string; digest: string }) => bed.measure(s.path, s.digest)
      const verdicts = (word: 'successfully passed' | 'failed') =>
        bed.logs
          .map((l) =>
            new RegExp(`Attestation (\\d+) for agent '${agentId}' ${word} verification`).exec(l),
          )
          .filter((m) => m !== null)
          .map((m) => Number(m[1]))

      beforeAll(async () => {
        bed = await startPushBed({
          database: await target.open(),
          port: verifierPort,
          agentId,
          verifier: { quote_interval: '1' },
          ima: true,
        })
      }, 90_000)

      afterAll(async () => {
        await bed?.stop()
      })

      test('add --push-model with a runtime policy → passes; allowed scripts pass; a bad script fails', async () => {
        run(INIT)
        await bed.startAgent()
        // limeCreateTestPolicy: a policy from a list with the allowed scripts
        const policySource = join(bed.work, 'policy-source')
        writeFileSync(
          policySource,
          [INIT, ...GOOD].map((s) => imaNgLine(s.path, s.digest)).join(''),
        )
        const policy = join(bed.work, 'policy.json')
        const rc = await runPolicyCreateRuntime(['-m', policySource, '-o', policy], {
          cwd: bed.work,
          stdout: { write: () => undefined },
          stderr: { write: () => undefined },
        })
        expect(rc).toBe(0)

        const add = await bed.tenant([
          ...['-v', '127.0.0.1', '-t', '127.0.0.1', '-u', agentId],
          ...['--runtime-policy', policy, '-c', 'add', '--push-model'],
        ])
        expect({ code: add.code, err: add.code === 0 ? '' : add.err + add.out }).toEqual({
          code: 0,
          err: '',
        })
        const list = await bed.tenant(['-c', 'cvlist'])
        expect(list.out).toContain(agentId)
        await until(
          () => verdicts('successfully passed').length > 0,
          15_000,
          'a passed attestation',
        )
        const index = Math.max(...verdicts('successfully passed'))

        // running allowed scripts should not affect attestation
        for (const s of GOOD) run(s)
        await until(
          () => verdicts('successfully passed').includes(index + 1),
          10_000,
          `attestation ${index + 1} passed`,
        )
        expect(verdicts('failed')).toEqual([])

        // fail keylime agent
        run(BAD)
        await until(() => verdicts('failed').length > 0, 10_000, 'a failed attestation')
        expect(bed.logs.some((l) => l.includes(`File not found in allowlist: ${BAD.path}`))).toBe(
          true,
        )
        expect(bed.logs.some((l) => /StringDataRightTruncation|value too long/i.test(l))).toBe(
          false,
        )
      }, 60_000)
    },
  )
}
