/**
 * Measured boot against real logs: OVMF/swtpm captures from the QEMU harness (test/fixtures/mb/vm-*,
 * made by make-vm-fixtures.sh) and upstream Keylime's create-mb-policy logs (test/fixtures/mb/upstream,
 * see NOTES.md), through replay, the refstate tool, the `example` policy and the verifier stage.
 */
import { describe, expect, test } from 'bun:test'
import { dirname, resolve } from 'node:path'
import { readMbPcrs } from './fixtures/mb/read-fixture.ts'
import {
  evaluateExample,
  evaluateMeasuredBoot,
  evaluateMeasuredBootEvidence,
  parseEventLog,
  replayEventLog,
} from '../src/mb/index.ts'
import { runCreateMbRefstate, runPolicyCreateMeasuredBoot } from '../src/policy-tools/index.ts'

const DIR = resolve(import.meta.dir, 'fixtures/mb')
const read = async (p: string): Promise<Uint8Array> => Bun.file(resolve(DIR, p)).bytes()

/** `tpm2_pcrread` YAML (`vm-…/pcrs.yaml`) into bank → index → bytes. */
const readPcrs = (p: string) => readMbPcrs(dirname(p))

function sink(): { write(s: string): void; text: string } {
  return {
    text: '',
    write(s: string) {
      this.text += s
    },
  }
}

async function makeRefstate(log: string, flags: string[] = []): Promise<Record<string, unknown>> {
  const out = sink()
  const err = sink()
  const rc = await runPolicyCreateMeasuredBoot(['-e', log, ...flags], {
    stdout: out,
    stderr: err,
    cwd: DIR,
  })
  expect(err.text).not.toContain('error')
  expect(rc).toBe(0)
  return JSON.parse(out.text)
}

describe.each(['vm-plain', 'vm-secureboot'])('%s (OVMF + swtpm capture)', (name) => {
  test('the log replays to the PCRs the guest TPM reports (sha1 and sha256, PCRs 0-9)', async () => {
    const { pcrs } = replayEventLog(parseEventLog(await read(`${name}/binary_bios_measurements`)))
    const quoted = await readPcrs(`${name}/pcrs.yaml`)
    for (const bank of ['sha1', 'sha256'] as const) {
      for (let i = 0; i <= 9; i++) {
        expect(Buffer.from(pcrs.get(bank)?.get(i) as Uint8Array).toString('hex')).toBe(
          Buffer.from(quoted.get(bank)?.get(i) as Uint8Array).toString('hex'),
        )
      }
    }
  })

  test('stage: accept-all evaluates a non-empty refstate (upstream #1932); reject-all rejects', async () => {
    const log = await read(`${name}/binary_bios_measurements`)
    const quotedPcrs = await readPcrs(`${name}/pcrs.yaml`)
    const base = { log, quotedPcrs, bank: 'sha256' as const, refstate: '{"x": 1}' }
    // not an example refstate: rejected by the built-in policy, never dropped
    const acc = evaluateMeasuredBoot({ ...base, policyName: 'accept-all' })
    expect(!acc.ok && acc.failures.map((f) => [f.event_id, f.context.reason])).toEqual([
      ['measured_boot.policy_example', 'policy evaluation failed: refstate lacks pk'],
    ])
    expect(acc.claims?.checkedPcrs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14])
    const rej = evaluateMeasuredBoot({ ...base, policyName: 'reject-all' })
    expect(rej.ok).toBe(false)
    if (!rej.ok)
      expect(rej.failures.map((f) => f.event_id)).toEqual(['measured_boot.policy_reject-all'])
  })
})

describe('vm-plain: refstate from our tool (EFI stub boot)', () => {
  const LOG = 'vm-plain/binary_bios_measurements'

  test('without -i the tool refuses a Secure-Boot-off log (exit 1)', async () => {
    const err = sink()
    const rc = await runPolicyCreateMeasuredBoot(['-e', LOG], {
      stdout: sink(),
      stderr: err,
      cwd: DIR,
    })
    expect(rc).toBe(1)
    expect(err.text).toContain('SecureBoot disabled')
  })

  test('the refstate made by the tool passes the example policy in the stage', async () => {
    const refstate = await makeRefstate(LOG, ['-i'])
    expect(refstate.has_secureboot).toBe(false)
    const without14 = await readPcrs('vm-plain/pcrs.yaml')
    for (const bank of without14.values()) bank.delete(14)
    const missing = evaluateMeasuredBoot({
      log: await read(LOG),
      quotedPcrs: without14,
      bank: 'sha256',
      policyName: 'example',
      refstate: JSON.stringify(refstate),
    })
    expect(!missing.ok && missing.failures.map((f) => [f.event_id, f.context.data])).toEqual([
      ['measured_boot.missing_pcrs', [14]],
    ])
    const r = evaluateMeasuredBoot({
      log: await read(LOG),
      quotedPcrs: await readPcrs('vm-plain/pcrs.yaml'),
      bank: 'sha256',
      policyName: 'example',
      refstate: JSON.stringify(refstate),
    })
    expect(r).toMatchObject({
      ok: true,
      claims: { evaluated: true, secureBoot: false, events: 25 },
    })
  })

  test('a changed kernel digest fails naming the boot application event', async () => {
    const refstate = await makeRefstate(LOG, ['-i'])
    const kernels = refstate.kernels as Array<Record<string, string>>
    ;(kernels[0] as Record<string, string>).kernel_authcode_sha256 = `0x${'ab'.repeat(32)}`
    const reason = evaluateExample(refstate, parseEventLog(await read(LOG)))
    expect(reason).toContain('event 10 (PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION)')
    expect(reason).toContain('kernel_authcode_sha256')
  })

  test('a changed command line (EFI stub LoadOptions digest) fails naming the PCR 9 event', async () => {
    const refstate = await makeRefstate(LOG, ['-i'])
    const k = (refstate.kernels as Array<Record<string, string>>)[0] as Record<string, string>
    k.load_options_sha256 = `0x${'cd'.repeat(32)}`
    const reason = evaluateExample(refstate, parseEventLog(await read(LOG)))
    expect(reason).toContain('event 21 (PCR 9 EV_EVENT_TAG)')
    // The digest really is sha256 of the UTF-16LE command line the guest saw, plus a NUL.
    const cmdline = (await Bun.file(resolve(DIR, 'vm-plain/cmdline')).text()).trim()
    const u16 = Buffer.from(`${cmdline}\0`, 'utf16le')
    const fresh = await makeRefstate(LOG, ['-i'])
    const lo = (fresh.kernels as Array<Record<string, string>>)[0]?.load_options_sha256
    expect(`0x${new Bun.CryptoHasher('sha256').update(u16).digest('hex')}`).toBe(lo as string)
  })

  test('a forged quote PCR gives measured_boot.invalid_pcr_N naming the unreconciled event', async () => {
    const quotedPcrs = await readPcrs('vm-plain/pcrs.yaml')
    const log = parseEventLog(await read(LOG))
    // The TPM saw only the first PCR 4 event: the log claims more than the quote reflects.
    const sha = (b: Uint8Array[]) =>
      b.reduce(
        (v, d) => new Bun.CryptoHasher('sha256').update(v).update(d).digest() as Uint8Array,
        new Uint8Array(32),
      )
    const pcr4 = log.events
      .filter((e) => e.pcr === 4)
      .map((e) => e.digests.find((d) => d.alg === 'sha256')?.digest as Uint8Array)
    quotedPcrs.get('sha256')?.set(4, sha(pcr4.slice(0, 1)))
    const r = evaluateMeasuredBoot({
      log: await read(LOG),
      quotedPcrs,
      bank: 'sha256',
      policyName: 'accept-all',
      refstate: { a: 1 },
      attestationCount: 1, // `once`: replay only, no policy evaluation
    })
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.failures).toHaveLength(1)
    const f = r.failures[0]
    expect(f?.event_id).toBe('measured_boot.invalid_pcr_4')
    expect(f?.context).toMatchObject({
      matching_prefix: 1,
      event: { index: 13, type: 'EV_EFI_ACTION' },
    })
  })

  test('once/always: evaluated only at attestation 0 with once', async () => {
    const base = {
      log: await read(LOG),
      quotedPcrs: await readPcrs('vm-plain/pcrs.yaml'),
      bank: 'sha256' as const,
      policyName: 'reject-all',
      refstate: { x: 1 },
    }
    expect(evaluateMeasuredBoot({ ...base, attestationCount: 3 }).ok).toBe(true)
    expect(evaluateMeasuredBoot({ ...base, attestationCount: 3, evaluate: 'always' }).ok).toBe(
      false,
    )
    const badMode = evaluateMeasuredBoot({ ...base, evaluate: 'sometimes' })
    expect(!badMode.ok && badMode.failures[0]?.event_id).toBe(
      'qoute_validation.invalid_measured_boot_evaluate',
    )
  })

  test('no refstate / empty refstate skips measured boot; a bad log is a parser failure', async () => {
    const base = {
      quotedPcrs: await readPcrs('vm-plain/pcrs.yaml'),
      bank: 'sha256' as const,
      policyName: 'reject-all',
    }
    expect(evaluateMeasuredBoot({ ...base, log: await read(LOG), refstate: null }).ok).toBe(true)
    expect(evaluateMeasuredBoot({ ...base, log: await read(LOG), refstate: '{}' }).ok).toBe(true)
    const bogus = evaluateMeasuredBoot({
      ...base,
      log: await read('upstream/binary_bios_measurements-bogus'),
      refstate: null,
    })
    expect(!bogus.ok && bogus.failures[0]?.event_id).toBe(
      'measured_boot.parser.tpm2_eventlog.error',
    )
    const noLog = evaluateMeasuredBoot({
      ...base,
      log: null,
      refstate: { x: 1 },
      policyName: 'example',
    })
    expect(!noLog.ok && noLog.failures[0]?.event_id).toBe('pcr_validation.unused_pcr_0')
  })

  test('/verify/evidence variant: base64 mb_log, always evaluated', async () => {
    const mb_log = Buffer.from(await read(LOG)).toString('base64')
    const quotedPcrs = await readPcrs('vm-plain/pcrs.yaml')
    const refstate = JSON.stringify(await makeRefstate(LOG, ['-i']))
    const ok = evaluateMeasuredBootEvidence({
      mb_log,
      mb_policy: refstate,
      hash_alg: 'sha256',
      quotedPcrs,
      policyName: 'example',
    })
    expect(ok.ok).toBe(true)
    const bad = evaluateMeasuredBootEvidence({
      mb_log: '@@@',
      mb_policy: refstate,
      hash_alg: 'sha256',
      quotedPcrs,
      policyName: 'example',
    })
    expect(!bad.ok && bad.failures[0]?.event_id).toBe('measured_boot.parser.log.base64decode')
  })
})

describe('upstream Keylime logs (shim + grub)', () => {
  const SB = 'upstream/binary_bios_measurements-secureboot'

  test('spec replay of the StartupLocality-3 log gives PCR0 0ee9a7fe… (tpm2-tools 5.4 differs)', async () => {
    const { pcrs, startupLocality } = replayEventLog(
      parseEventLog(await read('upstream/binary_bios_measurements')),
    )
    expect(startupLocality).toBe(3)
    expect(Buffer.from(pcrs.get('sha256')?.get(0) as Uint8Array).toString('hex')).toStartWith(
      '0ee9a7fe',
    )
  })

  test('refstate from the Secure Boot log passes; changed kernel digest and command line fail naming the event', async () => {
    const log = parseEventLog(await read(SB))
    const refstate = await makeRefstate(SB)
    expect(refstate.has_secureboot).toBe(true)
    expect((refstate.db as unknown[]).length).toBeGreaterThan(0)
    expect(evaluateExample(refstate, log)).toBe('')
    const k = (refstate.kernels as Array<Record<string, string>>)[0] as Record<string, string>
    const kernel = k.kernel_authcode_sha256 as string
    k.kernel_authcode_sha256 = `0x${'00'.repeat(32)}`
    expect(evaluateExample(refstate, log)).toMatch(
      /boot applications\[2\] event \d+ \(PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION\)/,
    )
    k.kernel_authcode_sha256 = kernel
    k.kernel_cmdline = 'something else'
    expect(evaluateExample(refstate, log)).toMatch(
      /kernel command line\[0\] event \d+ \(PCR 8 EV_IPL\)/,
    )
  })

  test('create_mb_refstate script form writes the file; usage errors exit 2', async () => {
    const out = `/tmp/mb-refstate-${process.pid}.json`
    expect(await runCreateMbRefstate([SB, out], { stdout: sink(), stderr: sink(), cwd: DIR })).toBe(
      0,
    )
    expect(JSON.parse(await Bun.file(out).text()).has_secureboot).toBe(true)
    expect(await runCreateMbRefstate([SB], { stdout: sink(), stderr: sink(), cwd: DIR })).toBe(2)
    expect(
      await runPolicyCreateMeasuredBoot(['--bogus'], { stdout: sink(), stderr: sink(), cwd: DIR }),
    ).toBe(2)
    expect(
      await runPolicyCreateMeasuredBoot(['-e', 'nope.bin'], {
        stdout: sink(),
        stderr: sink(),
        cwd: DIR,
      }),
    ).toBe(1)
  })
})

const hasEventlog = Bun.which('tpm2_eventlog') !== null
if (!hasEventlog) console.log('skipping tpm2_eventlog cross-check: tpm2_eventlog is not installed')

describe('cross-check with tpm2_eventlog', () => {
  test
    .skipIf(!hasEventlog)
    .each([
      'vm-plain/binary_bios_measurements',
      'vm-secureboot/binary_bios_measurements',
      'upstream/binary_bios_measurements',
      'upstream/binary_bios_measurements-secureboot',
    ])('%s: event count, types, PCRs and digests agree', async (file) => {
    const proc = Bun.spawnSync(['tpm2_eventlog', resolve(DIR, file)])
    const yaml = proc.stdout.toString()
    const blocks = yaml.split(/^- EventNum: /m).slice(1)
    const log = parseEventLog(await read(file))
    expect(log.events.length).toBe(blocks.length)
    for (const [i, b] of blocks.entries()) {
      const ev = log.events[i]
      expect(ev?.typeName).toBe(/EventType: (\S+)/.exec(b)?.[1] as string)
      expect(ev?.pcr).toBe(Number(/PCRIndex: (\d+)/.exec(b)?.[1]))
      if (i === 0) continue
      const theirs = [...b.matchAll(/AlgorithmId: (\S+)\n\s+Digest: "([0-9a-f]+)"/g)].map(
        (m) => `${m[1]}:${m[2]}`,
      )
      expect(ev?.digests.map((d) => `${d.alg}:${Buffer.from(d.digest).toString('hex')}`)).toEqual(
        theirs,
      )
    }
  })
})
