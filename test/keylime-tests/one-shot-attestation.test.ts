/**
 * Mirror of keylime-tests `functional/one-shot-attestation` (RedHat-SP-Security/keylime-tests
 * `ab163590314546d90cdcd7a89e56d3d0b562f4ec`): `POST /v2.5/verify/evidence` with no agent and no
 * registrar, the evidence gathered as upstream's `keylime_oneshot_attestation` script does —
 * tpm2-tools on a swtpm (EK at 0x81010001, an RSA AK, `tpm2_quote` of sha256:0–15 with the hex
 * nonce, quote string `r<msg>:<sig>:<pcrs>`), the IMA list and the measured-boot log (base64), and
 * the three policies as the JSON text of their files — sent over real TLS on 127.0.0.1 without a
 * client certificate (`verify_evidence` is a public action), the verifier's CA pinned.
 *
 * Mirrored, phase by phase:
 * 1. valid attestation with runtime, TPM and measured-boot policy → `valid: true`. The PCRs are set
 *    by replaying upstream's `binary_bios_measurements` (its `tsseventextend` step is done with
 *    `tpm2_eventlog` + `tpm2_pcrextend`), the MB policy made by our `keylime policy create
 *    measured-boot -e` and the runtime policy by `keylime policy create runtime --allowlist
 *    --excludelist` (upstream's `limeCreateTestPolicy`);
 * 2. TPM policy with a wrong PCR 0 → `valid: false`, "PCR value is not in allowlist";
 * 3. a file not in the allowlist (evil-script.sh) → `ima.validation.ima-ng.not_in_allowlist`,
 *    "File not found in allowlist: …evil-script.sh";
 * 4. allowed-script.sh changed after the policy was made → `ima.validation.ima-ng.runtime_policy_hash`,
 *    "Hash not found in runtime policy";
 * 5. a runtime policy that is not JSON → no valid answer (upstream: HTTP 500, the script exits 1
 *    "Failure from verifier"; ours: never a 5xx, see the test);
 * 6. a client trusting another CA cannot connect (certificate verify failed).
 *
 * Not mirrored: phase 7 (an unresolvable verifier host) is the Python client's DNS error, no
 * verifier behaviour. The IMA list is a synthetic `ima-ng` list extended into PCR 10 (the kernel's
 * list of the test host cannot be used here); the verifier uses `measured_boot_policy_name =
 * example` (upstream keeps the default `accept-all`), which checks more.
 *
 * Every phase but 6 sends `runtime_policy` as upstream's script does — the policy's JSON text.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import { runPolicyCreateRuntime } from '../../src/policy-tools/index.ts'
import { runPolicyCreateMeasuredBoot } from '../../src/policy-tools/create-refstate-cli.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { OPENSSL, openssl } from '../support/ca-helpers.ts'
import { databaseTargets } from '../support/databases.ts'
import { missingTpm2ToolsAgentTools, Tpm2ToolsAgent } from '../support/tpm2-tools-agent.ts'
import { createTestCa, startTestVerifier, type TestCa } from '../support/verifier-harness.ts'
import { extendEventLog, ImaList, runTool } from '../support/host-evidence.ts'

const MB_LOG_PATH = join(import.meta.dir, '../fixtures/mb/keylime-tests/binary_bios_measurements')
const missing = [
  ...missingTpm2ToolsAgentTools(),
  ...['tpm2_quote', 'tpm2_pcrextend', 'tpm2_pcrread', 'tpm2_eventlog'].filter((t) => !Bun.which(t)),
  ...(OPENSSL ? [] : ['openssl']),
]
if (missing.length > 0) console.log(`skipping one-shot-attestation: missing ${missing.join(', ')}`)

/** The answer of `/verify/evidence`. */
interface Answer {
  status: number
  valid: boolean | undefined
  failures: { type: string; context: Record<string, unknown> }[]
  text: string
}

describe.skipIf(missing.length > 0)('keylime-tests functional/one-shot-attestation', () => {
  let db: KeylimeDatabase
  let ca: TestCa
  let verifier: VerifierHandle
  let tpm: Tpm2ToolsAgent
  let akPub: Buffer
  const work = mkdtempSync(join(tmpdir(), 'kl-oneshot-'))
  const ima = new ImaList()
  const policies: Record<string, string> = {}
  const TESTDIR = '/var/tmp/limeLib-oneshot'
  const ONESHOT = '/usr/share/keylime/scripts/keylime_oneshot_attestation'

  /** The evidence as the one-shot script builds it: a fresh quote, the logs, the policies. */
  function evidence(policy: { runtime?: string; tpm?: string; mb?: string }): unknown {
    const nonce = `oneshot${Math.random().toString(36).slice(2, 14)}`
    tpm.flushAll()
    tpm.must([
      'tpm2_quote',
      '-c',
      'ak-os.ctx',
      '-l',
      'sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15',
      '-q',
      Buffer.from(nonce).toString('hex'),
      '-m',
      'quote.msg',
      '-s',
      'quote.sig',
      '-o',
      'quote.pcrs',
      '-g',
      'sha256',
    ])
    tpm.flushAll()
    const b64 = (f: string) => readFileSync(join(tpm.work, f)).toString('base64')
    return {
      type: 'tpm',
      data: {
        quote: `r${b64('quote.msg')}:${b64('quote.sig')}:${b64('quote.pcrs')}`,
        nonce,
        hash_alg: 'sha256',
        tpm_ek: tpm.ekPub.toString('base64'),
        tpm_ak: akPub.toString('base64'),
        tpm_policy: policy.tpm ?? '',
        runtime_policy: policy.runtime ?? '',
        mb_policy: policy.mb ?? '',
        ima_measurement_list: ima.text,
        mb_log: readFileSync(MB_LOG_PATH).toString('base64'),
      },
    }
  }

  /** POSTs `body` over TLS with no client certificate, trusting `caPem`. */
  async function oneshot(body: unknown, caPem = ca.tls.ca): Promise<Answer> {
    const res = await fetch(`${verifier.servers[0]!.url}/v2.5/verify/evidence`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      tls: { ca: caPem, checkServerIdentity: () => undefined },
    } as RequestInit)
    const text = await res.text()
    const j = JSON.parse(text) as { results?: { valid?: boolean; failures?: Answer['failures'] } }
    return {
      status: res.status,
      valid: j.results?.valid,
      failures: j.results?.failures ?? [],
      text,
    }
  }

  const types = (a: Answer) => a.failures.map((f) => f.type)

  beforeAll(async () => {
    db = await databaseTargets()[0]!.open()
    ca = await createTestCa()
    verifier = await startTestVerifier(db, ca, { measured_boot_policy_name: 'example' })
    tpm = await Tpm2ToolsAgent.start()
    akPub = tpm.createAk('os')
    // Upstream: `tsseventextend -tpm -if binary_bios_measurements`, then the MB policy.
    extendEventLog(tpm, MB_LOG_PATH)
    policies.mb = await runTool(runPolicyCreateMeasuredBoot, ['-e', MB_LOG_PATH, '-o', '-'])
    tpm.must(['tpm2_pcrread', 'sha256:0', '-o', 'pcr0.bin'])
    const pcr0 = readFileSync(join(tpm.work, 'pcr0.bin')).toString('hex')
    policies.tpm = JSON.stringify({ 0: [pcr0] })
    policies.tpmWrong = JSON.stringify({ 0: ['f'.repeat(64)] })
    // The IMA list so far: boot_aggregate over PCRs 0–9, and the one-shot script itself.
    tpm.must(['tpm2_pcrread', 'sha256:0,1,2,3,4,5,6,7,8,9', '-o', 'pcrs0-9.bin'])
    const bootAggregate = createHash('sha256')
      .update(readFileSync(join(tpm.work, 'pcrs0-9.bin')))
      .digest('hex')
    ima.measure(tpm, 'boot_aggregate', bootAggregate)
    ima.measure(tpm, ONESHOT, sha256('#!/usr/bin/python3\n'))
    // limeCreateTestPolicy $TESTDIR/allowed-script.sh $ONESHOT: allowlist + excludelist.
    const allowlist = join(work, 'allowlist.txt')
    writeFileSync(
      allowlist,
      [
        `${bootAggregate}  boot_aggregate`,
        `${sha256(script('allowed-script'))}  ${TESTDIR}/allowed-script.sh`,
        `${sha256('#!/usr/bin/python3\n')}  ${ONESHOT}`,
        '',
      ].join('\n'),
    )
    const excludelist = join(work, 'excludelist.txt')
    writeFileSync(excludelist, '/tmp/.*\n')
    const out = join(work, 'policy.json')
    await runTool(runPolicyCreateRuntime, ['-a', allowlist, '-e', excludelist, '-o', out])
    policies.runtime = readFileSync(out, 'utf8')
  }, 60_000)

  afterAll(async () => {
    await verifier?.stop(200)
    await tpm?.remove()
    await db?.close()
  })

  test('1. valid attestation with runtime, TPM and measured-boot policy', async () => {
    ima.measure(tpm, `${TESTDIR}/allowed-script.sh`, sha256(script('allowed-script')))
    const r = await oneshot(
      evidence({ runtime: policies.runtime, tpm: policies.tpm, mb: policies.mb }),
    )
    expect(r.failures).toEqual([])
    expect(r.status).toBe(200)
    expect(r.valid).toBe(true)
  })

  test('2. TPM policy mismatch: valid false, "PCR value is not in allowlist"', async () => {
    const r = await oneshot(evidence({ runtime: policies.runtime, tpm: policies.tpmWrong }))
    expect(r.status).toBe(200)
    expect(r.valid).toBe(false)
    expect(types(r)).toContain('pcr_validation.invalid_pcr_0')
    expect(r.text).toContain('PCR value is not in allowlist')
  })

  test('3. a file not in the allowlist: not_in_allowlist, naming evil-script.sh', async () => {
    ima.measure(tpm, `${TESTDIR}/evil-script.sh`, sha256(script('evil-script')))
    const r = await oneshot(evidence({ runtime: policies.runtime }))
    expect(r.status).toBe(200)
    expect(r.valid).toBe(false)
    expect(types(r)).toContain('ima.validation.ima-ng.not_in_allowlist')
    expect(r.text).toMatch(/File not found in allowlist.*evil-script\.sh/)
  })

  test('4. a changed allowed-script.sh: runtime_policy_hash', async () => {
    ima.measure(tpm, `${TESTDIR}/allowed-script.sh`, sha256(script('Modified content', true)))
    const r = await oneshot(evidence({ runtime: policies.runtime }))
    expect(r.status).toBe(200)
    expect(r.valid).toBe(false)
    expect(types(r)).toContain('ima.validation.ima-ng.runtime_policy_hash')
    expect(r.text).toMatch(/Hash not found in runtime policy/i)
  })

  test('5. a runtime policy that is not JSON: no valid answer, never a 5xx', async () => {
    // Upstream answers 500 (its handler's exception path) and the script exits 1; keylime-ts
    // answers without a 5xx (docs/compatibility.md, `/verify/evidence` evaluation).
    const r = await oneshot(evidence({ runtime: 'this is not valid json {{{' }))
    expect(r.status).toBeLessThan(500)
    expect(r.valid).not.toBe(true)
  })

  test('6. a client trusting another CA: certificate verify failed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kl-untrusted-'))
    const made = openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-keyout',
        'untrusted_key.pem',
        '-out',
        'untrusted_ca.pem',
        '-days',
        '1',
        '-nodes',
        '-subj',
        '/CN=Untrusted CA',
      ],
      dir,
    )
    expect(made.code).toBe(0)
    const untrusted = readFileSync(join(dir, 'untrusted_ca.pem'), 'utf8')
    const body = evidence({ tpm: policies.tpm })
    await expect(oneshot(body, [untrusted])).rejects.toThrow()
  })
})

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** The test scripts' contents, as upstream writes them with `echo -e`. */
function script(name: string, raw = false): string {
  return raw ? `#!/bin/bash\necho ${name}\n` : `#!/bin/bash\necho This is ${name}\n`
}
