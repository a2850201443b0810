/**
 * Measured boot against REAL altered boots: each `test/fixtures/mb/vm-tamper-*` is the QEMU harness
 * guest booted with one component changed (firmware, kernel, initrd, command line, Secure Boot
 * variables; `make-vm-fixtures.sh`), with the PCRs its swtpm reported. The refstate is always made
 * from the GENUINE boot (`vm-plain`) by `keylime policy create measured-boot -i`, as an operator
 * would, and the altered log is evaluated with the altered machine's own PCRs:
 *
 * - through `src/mb` (`evaluateExample`) and the verifier's stage (`evaluateMeasuredBoot`), the
 *   policy rejects it with `measured_boot.policy_example`, naming the component's event;
 * - an agent that sends the genuine log from the altered machine fails the replay with
 *   `measured_boot.invalid_pcr_<n>` for exactly the PCRs the change moved;
 * - under the default `accept-all`, a non-empty refstate is still evaluated (by `example`; upstream
 *   #1932 drops it), an empty one skips measured boot as upstream, and `POST /verify/evidence` does
 *   the same through its public API (a SoftTpm quoting the altered PCRs).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MB_FIXTURES, readMbLog, readMbPcrs } from './fixtures/mb/read-fixture.ts'
import { generateSoftTpmKey, SoftTpm } from './support/fleet/soft-tpm.ts'
import { createTestCa, startTestVerifier } from './support/verifier-harness.ts'
import { databaseTargets } from './support/databases.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { setLogSink } from '../src/log/logger.ts'
import {
  evaluateExample,
  evaluateMeasuredBoot,
  parseEventLog,
  replayEventLog,
} from '../src/mb/index.ts'
import { runPolicyCreateMeasuredBoot } from '../src/policy-tools/index.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'

const logOf = readMbLog
const pcrsOf = readMbPcrs

/** `keylime policy create measured-boot -e <genuine log> [-i]`, run in-process. */
async function genuineRefstate(
  variant = 'vm-plain',
  flags = ['-i'],
): Promise<Record<string, unknown>> {
  let out = ''
  let err = ''
  const rc = await runPolicyCreateMeasuredBoot(
    ['-e', join(MB_FIXTURES, variant, 'binary_bios_measurements'), ...flags],
    {
      cwd: mkdtempSync(join(tmpdir(), 'kl-mb-tamper-')),
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    },
  )
  if (rc !== 0) throw new Error(`policy create measured-boot failed (${rc}): ${err}`)
  return JSON.parse(out)
}

/** One altered boot: the PCRs the change moved and what the policy's reason must name. */
interface Variant {
  dir: string
  moved: number[]
  names: string[]
}

const VARIANTS: Variant[] = [
  {
    dir: 'vm-tamper-firmware',
    moved: [0],
    names: ['event 2 (PCR 0 EV_EFI_PLATFORM_FIRMWARE_BLOB)', 'platform firmware[0]'],
  },
  {
    dir: 'vm-tamper-kernel',
    moved: [4],
    names: ['event 10 (PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION)', 'kernel_authcode_sha256'],
  },
  {
    // QEMU writes the initrd size into the kernel header it hands to OVMF: PCR 4 moves too.
    dir: 'vm-tamper-initrd',
    moved: [4, 9],
    names: ['event 22 (PCR 9 EV_EVENT_TAG)', 'initrd_plain_sha256'],
  },
  {
    dir: 'vm-tamper-cmdline',
    moved: [9],
    names: ['event 21 (PCR 9 EV_EVENT_TAG)', 'load_options_sha256'],
  },
  {
    dir: 'vm-tamper-sbvars',
    moved: [4, 7, 9],
    names: ['event 4 (PCR 7 EV_EFI_VARIABLE_DRIVER_CONFIG) SecureBoot is Yes, expected No'],
  },
]

let refstate: Record<string, unknown>
beforeAll(async () => {
  refstate = await genuineRefstate()
})

describe('the genuine QEMU boot (vm-plain)', () => {
  test('passes the refstate made from it, under example and under the default accept-all', async () => {
    const log = await logOf('vm-plain')
    const quotedPcrs = await pcrsOf('vm-plain')
    expect(evaluateExample(refstate, parseEventLog(log))).toBe('')
    for (const policyName of ['example', 'accept-all']) {
      const r = evaluateMeasuredBoot({ log, quotedPcrs, bank: 'sha256', policyName, refstate })
      expect(r, policyName).toMatchObject({
        ok: true,
        claims: { evaluated: true, checkedPcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14] },
      })
    }
  })
})

describe.each(VARIANTS)('$dir (a real boot with one component altered)', (v) => {
  test('its log replays to the PCRs its TPM reported, and differs from the genuine one only in the moved PCRs', async () => {
    const { pcrs } = replayEventLog(parseEventLog(await logOf(v.dir)))
    const own = await pcrsOf(v.dir)
    const genuine = await pcrsOf('vm-plain')
    const moved: number[] = []
    for (const [n, value] of own.get('sha256') ?? []) {
      const hex = Buffer.from(value).toString('hex')
      if (n <= 9) expect(Buffer.from(pcrs.get('sha256')?.get(n) ?? []).toString('hex')).toBe(hex)
      if (Buffer.from(genuine.get('sha256')?.get(n) ?? []).toString('hex') !== hex) moved.push(n)
    }
    expect(moved).toEqual(v.moved)
  })

  test('src/mb: the example policy rejects it, naming the component', async () => {
    const reason = evaluateExample(refstate, parseEventLog(await logOf(v.dir)))
    for (const s of v.names) expect(reason).toContain(s)
  })

  test('stage: measured_boot.policy_example under example and under accept-all', async () => {
    const log = await logOf(v.dir)
    const quotedPcrs = await pcrsOf(v.dir)
    for (const policyName of ['example', 'accept-all']) {
      const r = evaluateMeasuredBoot({ log, quotedPcrs, bank: 'sha256', policyName, refstate })
      expect(r.ok, policyName).toBe(false)
      if (r.ok) continue
      expect(r.failures.map((f) => f.event_id)).toEqual(['measured_boot.policy_example'])
      expect(r.failures[0]?.context.policy).toBe('example')
      for (const s of v.names) expect(String(r.failures[0]?.context.reason)).toContain(s)
    }
  })

  test('stage: the genuine log sent from the altered machine fails the replay of the moved PCRs', async () => {
    const r = evaluateMeasuredBoot({
      log: await logOf('vm-plain'),
      quotedPcrs: await pcrsOf(v.dir),
      bank: 'sha256',
      policyName: 'accept-all',
      refstate,
    })
    expect(r.ok).toBe(false)
    if (r.ok) return
    const replay = r.failures.filter((f) => f.event_id.startsWith('measured_boot.invalid_pcr_'))
    expect(replay.map((f) => f.event_id)).toEqual(
      v.moved.map((n) => `measured_boot.invalid_pcr_${n}`),
    )
    for (const [i, f] of replay.entries()) {
      expect(f.context.event).toMatchObject({ pcr: v.moved[i] })
      expect(String(f.context.reason)).toContain(`PCR ${v.moved[i]}`)
    }
  })

  test('stage: an empty refstate under accept-all skips measured boot, as upstream', async () => {
    const log = await logOf(v.dir)
    const quotedPcrs = await pcrsOf(v.dir)
    for (const empty of ['{}', '', null, {}]) {
      const r = evaluateMeasuredBoot({
        log,
        quotedPcrs,
        bank: 'sha256',
        policyName: 'accept-all',
        refstate: empty,
      })
      expect(r).toMatchObject({ ok: true, claims: { evaluated: false, checkedPcrs: [] } })
    }
  })
})

test('accept-all with a non-empty refstate logs the substitution once per refstate', async () => {
  const lines: string[] = []
  const prev = setLogSink((l) => lines.push(l))
  try {
    const log = await logOf('vm-plain')
    const quotedPcrs = await pcrsOf('vm-plain')
    const own = { ...refstate, vendor_db: [] as unknown[], note: `${Math.random()}` }
    for (let i = 0; i < 3; i++)
      evaluateMeasuredBoot({
        log,
        quotedPcrs,
        bank: 'sha256',
        policyName: 'accept-all',
        refstate: own,
      })
    evaluateMeasuredBoot({ log, quotedPcrs, bank: 'sha256', policyName: 'example', refstate: own })
  } finally {
    setLogSink(prev)
  }
  const hits = lines.filter((l) => l.includes('evaluated by the built-in example policy'))
  expect(hits.length).toBe(1)
  expect(hits[0]).toContain('WARNING')
})

for (const target of databaseTargets()) {
  describe(`POST /verify/evidence under the default accept-all (${target.name})`, () => {
    let kdb: KeylimeDatabase
    let verifier: VerifierHandle
    let tpm: SoftTpm
    const MB_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14]

    /** Quotes the PCRs of `machine`'s boot and posts `log` with `mbPolicy`. */
    const post = async (machine: string, log: string, mbPolicy: string, nonce: string) => {
      for (const [n, value] of (await pcrsOf(machine)).get('sha256') ?? [])
        tpm.restorePcr('sha256', n, value)
      const res = await verifier.app.request('/v2.5/verify/evidence', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          type: 'tpm',
          data: {
            quote: tpm.quote(nonce, MB_PCRS).quote,
            nonce,
            hash_alg: 'sha256',
            tpm_ek: Buffer.from(tpm.ekTpm2b).toString('base64'),
            tpm_ak: Buffer.from(tpm.akTpm2b).toString('base64'),
            mb_log: Buffer.from(await logOf(log)).toString('base64'),
            mb_policy: mbPolicy,
          },
        }),
      })
      expect(res.status).toBe(200)
      const j = (await res.json()) as {
        results: { valid: boolean; failures: { type: string; context: Record<string, unknown> }[] }
      }
      return j.results
    }

    beforeAll(async () => {
      kdb = await target.open()
      verifier = await startTestVerifier(kdb, await createTestCa(), {
        measured_boot_policy_name: 'accept-all',
      })
      tpm = new SoftTpm({
        keys: {
          ek: generateSoftTpmKey('ecc'),
          ak: generateSoftTpmKey('ecc'),
          nk: generateSoftTpmKey('rsa'),
        },
        hashAlg: 'sha256',
      })
    }, 30_000)

    afterAll(async () => {
      await verifier?.stop(200)
      await kdb?.close()
    })

    test('the genuine boot with its refstate is valid', async () => {
      const r = await post('vm-plain', 'vm-plain', JSON.stringify(refstate), 'mbgenuine1')
      expect(r.failures).toEqual([])
      expect(r.valid).toBe(true)
    })

    test('each altered boot is invalid: measured_boot.policy_example naming the component', async () => {
      for (const [i, v] of VARIANTS.entries()) {
        const r = await post(v.dir, v.dir, JSON.stringify(refstate), `mbtamper${i}`)
        expect(r.valid, v.dir).toBe(false)
        expect(r.failures.map((f) => f.type)).toEqual(['measured_boot.policy_example'])
        for (const s of v.names) expect(String(r.failures[0]?.context.reason)).toContain(s)
      }
    })

    test('an empty refstate ({}) skips measured boot, as upstream', async () => {
      const r = await post('vm-tamper-kernel', 'vm-tamper-kernel', '{}', 'mbempty1')
      expect(r.failures).toEqual([])
      expect(r.valid).toBe(true)
    })
  })
}

/** Other boot shapes: a genuine boot and its altered boots. */
const SHAPES: Array<{ genuine: string; flags: string[]; pcrs: number[]; tampers: Variant[] }> = [
  {
    genuine: 'vm-shim-grub', // Secure Boot on: no -i
    flags: [],
    pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14],
    tampers: [
      {
        dir: 'vm-shim-grub-tamper-cmdline',
        moved: [8, 9], // PCR 9: grub measures the grub.cfg it reads
        names: ['event 44 (PCR 8 EV_IPL)', 'mb_tamper=1', 'does not match kernel_cmdline'],
      },
      {
        dir: 'vm-shim-grub-tamper-initrd',
        moved: [9],
        names: ['event 46 (PCR 9 EV_IPL)', 'initrd_plain_sha256'],
      },
      {
        dir: 'vm-shim-grub-tamper-dbx',
        moved: [7],
        names: ['event 8 (PCR 7 EV_EFI_VARIABLE_DRIVER_CONFIG) lacks 1 required dbx entries'],
      },
    ],
  },
  {
    genuine: 'vm-uki',
    flags: ['-i'],
    pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14],
    tampers: [
      {
        dir: 'vm-uki-tamper-cmdline',
        moved: [4, 9, 11, 12],
        names: [
          'event 27 (PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION)',
          'uki_authcode_sha256',
          'event 39 (PCR 9 EV_EVENT_TAG)',
          '(PCR 12 EV_IPL)',
          'UKI section .cmdline: event 34 (PCR 11 EV_IPL)',
        ],
      },
      {
        dir: 'vm-uki-tamper-initrd',
        moved: [4, 9, 11],
        names: [
          'uki_authcode_sha256',
          'event 40 (PCR 9 EV_EVENT_TAG)',
          'initrd_plain_sha256',
          'UKI section .initrd: event 36 (PCR 11 EV_IPL)',
        ],
      },
    ],
  },
]

describe.each(SHAPES)('boot shape $genuine (real boots)', (shape) => {
  const stage = async (log: string, quote: string, ref: unknown) =>
    evaluateMeasuredBoot({
      log: await logOf(log),
      quotedPcrs: await pcrsOf(quote),
      bank: 'sha256',
      policyName: 'accept-all',
      refstate: ref,
    })

  test("the refstate made from the genuine log passes it, comparing the shape's PCRs", async () => {
    const ref = await genuineRefstate(shape.genuine, shape.flags)
    expect(await stage(shape.genuine, shape.genuine, ref)).toMatchObject({
      ok: true,
      claims: { evaluated: true, checkedPcrs: shape.pcrs },
    })
  })

  test.each(shape.tampers)(
    '$dir: replays to its own PCRs and fails naming the component',
    async (t) => {
      const ref = await genuineRefstate(shape.genuine, shape.flags)
      const own = (await pcrsOf(t.dir)).get('sha256') ?? new Map()
      const genuine = (await pcrsOf(shape.genuine)).get('sha256') ?? new Map()
      const moved = [...own.keys()].filter(
        (n) => Buffer.compare(own.get(n) as Uint8Array, genuine.get(n) as Uint8Array) !== 0,
      )
      expect(moved).toEqual(t.moved)
      const r = await stage(t.dir, t.dir, ref)
      expect(r.ok).toBe(false)
      if (r.ok) return
      expect(r.failures.map((f) => f.event_id)).toEqual(['measured_boot.policy_example'])
      for (const s of t.names) expect(String(r.failures[0]?.context.reason)).toContain(s)
      // the genuine log from the altered machine: the replay of each moved PCR fails
      const lying = await stage(shape.genuine, t.dir, ref)
      expect(!lying.ok && lying.failures.map((f) => f.event_id)).toEqual(
        t.moved.map((n) => `measured_boot.invalid_pcr_${n}`),
      )
    },
  )
})

test('UKI: PCRs 11 and 12 must be quoted (measured_boot.missing_pcrs)', async () => {
  const ref = await genuineRefstate('vm-uki')
  const quotedPcrs = await pcrsOf('vm-uki')
  for (const bank of quotedPcrs.values()) for (const n of [11, 12]) bank.delete(n)
  const r = evaluateMeasuredBoot({
    log: await logOf('vm-uki'),
    quotedPcrs,
    bank: 'sha256',
    policyName: 'example',
    refstate: ref,
  })
  expect(!r.ok && r.failures.map((f) => [f.event_id, f.context.data])).toEqual([
    ['measured_boot.missing_pcrs', [11, 12]],
  ])
})

test('shim + grub, Secure Boot on: db and dbx are checked against the refstate (PCR 7)', async () => {
  const ref = await genuineRefstate('vm-shim-grub', [])
  const log = parseEventLog(await logOf('vm-shim-grub'))
  const db = ref.db as unknown[]
  expect(db.length).toBe(2) // Microsoft's Windows PCA 2011 and UEFI CA 2011
  expect(evaluateExample({ ...ref, db: db.slice(1) }, log)).toContain(
    'event 7 (PCR 7 EV_EFI_VARIABLE_DRIVER_CONFIG) signature list 0 has a key not in the reference state',
  )
  const extraDbx = {
    SignatureOwner: '77fa9abd-0359-4d32-bd60-28f4e78f784b',
    SignatureData: `0x${'ab'.repeat(32)}`,
  }
  expect(evaluateExample({ ...ref, dbx: [...(ref.dbx as unknown[]), extraDbx] }, log)).toContain(
    'event 8 (PCR 7 EV_EFI_VARIABLE_DRIVER_CONFIG) lacks 1 required dbx entries',
  )
  expect(evaluateExample({ ...ref, has_secureboot: false }, log)).toContain(
    'event 4 (PCR 7 EV_EFI_VARIABLE_DRIVER_CONFIG) SecureBoot is Yes, expected No',
  )
})

test('shim + grub: the refstate has upstream keys only, and kernel_cmdline is read as upstream does (Python regex, full match)', async () => {
  const ref = await genuineRefstate('vm-shim-grub', [])
  const kernel = (ref.kernels as Array<Record<string, string>>)[0] as Record<string, string>
  expect(Object.keys(kernel).sort()).toEqual([
    'grub_authcode_sha256',
    'initrd_plain_sha256',
    'kernel_authcode_sha256',
    'kernel_cmdline',
    'shim_authcode_sha256',
  ])
  const genuine = parseEventLog(await logOf('vm-shim-grub'))
  const tampered = parseEventLog(await logOf('vm-shim-grub-tamper-cmdline'))
  const withCmdline = (re: string) => ({ ...ref, kernels: [{ ...kernel, kernel_cmdline: re }] })
  // an operator's hand-written regex: both boots fit the first, only the genuine one the second
  const loose = withCmdline('/vmlinuz console=\\S+ .* quiet( mb_tamper=1)?')
  expect(evaluateExample(loose, genuine)).toBe('')
  expect(evaluateExample(loose, tampered)).toBe('')
  const strict = withCmdline('/vmlinuz .*quiet')
  expect(evaluateExample(strict, genuine)).toBe('')
  expect(evaluateExample(strict, tampered)).toContain('does not match kernel_cmdline')
})
