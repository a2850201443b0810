import { describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { buildAgileLog, grubStyleEvents } from '../../test/fixtures/mb/synthetic.ts'
import { isMbError } from './errors.ts'
import { parseEventLog } from './parse-event-log.ts'
import { compileRegex } from './example-policy.ts'
import { getPolicy } from './policies.ts'
import { compileRulePolicy, evaluateRulePolicy } from './rule-policy.ts'

const log = parseEventLog(buildAgileLog(grubStyleEvents()))
const sha256 = (s: string | Uint8Array): string =>
  `0x${createHash('sha256').update(s).digest('hex')}`
const kernelApp = sha256(new Uint8Array(32))

const doc = {
  name: 'grub-boot',
  default: 'reject',
  rules: [
    {
      id: 'crtm',
      match: {
        pcr: 0,
        type: ['EV_S_CRTM_VERSION', 'EV_EFI_PLATFORM_FIRMWARE_BLOB', 'EV_SEPARATOR'],
      },
    },
    {
      id: 'apps',
      match: { pcr: 4, type: 'EV_EFI_BOOT_SERVICES_APPLICATION' },
      sequence: [{ sha256: kernelApp }],
    },
    { id: 'grub', match: { pcr: 8, type: 'EV_IPL', fields: { String: 'grub_cmd: .*' } } },
    {
      id: 'cmdline',
      match: { pcr: 8, type: 'EV_IPL' },
      fields: { String: 'kernel_cmdline: .* quiet' },
      min: 1,
      max: 1,
    },
    {
      id: 'initrd',
      match: { pcr: 9, type: 'EV_IPL' },
      digests: [{ sha256: sha256('/boot/initrd.img\0') }],
    },
  ],
}

describe('declarative policies', () => {
  test('a matching log is accepted; relevant PCRs come from the rules', () => {
    const p = compileRulePolicy(doc)
    expect(p.relevantPcrs).toEqual([0, 4, 8, 9])
    expect(evaluateRulePolicy(p, log)).toBe('')
  })

  test('field regex, digest set, sequence, count and default reject each fail naming the event', () => {
    const variant = (i: number, patch: Record<string, unknown>) => {
      const rules = doc.rules.map((r, j) => (j === i ? { ...r, ...patch } : r))
      return evaluateRulePolicy(compileRulePolicy({ ...doc, rules }), log)
    }
    expect(variant(3, { fields: { String: 'kernel_cmdline: .* splash' } })).toMatch(
      /^event 5 \(PCR 8 EV_IPL\) rule "cmdline": field String/,
    )
    expect(variant(4, { digests: [{ sha256: `0x${'00'.repeat(32)}` }] })).toBe(
      'event 6 (PCR 9 EV_IPL) rule "initrd": digest not allowed',
    )
    expect(variant(1, { sequence: [{ sha256: `0x${'11'.repeat(32)}` }] })).toContain(
      'event 3 (PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION) rule "apps": sequence[0]',
    )
    expect(variant(3, { min: 2, max: 5 })).toBe(
      'rule "cmdline": matched 1 events, expected at least 2',
    )
    expect(variant(2, { action: 'reject' })).toBe('event 4 (PCR 8 EV_IPL) rule "grub": rejected')
    const noInitrd = evaluateRulePolicy(
      compileRulePolicy({ ...doc, rules: doc.rules.slice(0, 4) }),
      log,
    )
    expect(noInitrd).toBe('event 6 (PCR 9 EV_IPL) matches no rule')
    expect(
      evaluateRulePolicy(compileRulePolicy({ ...doc, default: 'accept', rules: [] }), log),
    ).toBe('')
  })

  test.each([
    [{ name: 'example', rules: [] }, /built-in/],
    [{ name: 'x', rules: [{ match: { pcr: 99 } }] }, /not 0..23/],
    [{ name: 'x', rules: [{ fields: { String: '(' } }] }, /valid regular expression/],
    [{ name: 'x', rules: [{ digests: [{ sha256: 'ABC' }] }] }, /lowercase hex/],
    [{ name: 'x', rules: [], extra: 1 }, /unknown key/],
    [{ name: 'x', rules: [{ min: 3, max: 1 }] }, /min is larger/],
    ['nope', /JSON object/],
  ])('invalid document %# is ERR_MB_POLICY', (bad, msg) => {
    try {
      compileRulePolicy(bad)
      throw new Error('accepted')
    } catch (e) {
      expect(isMbError(e, 'ERR_MB_POLICY')).toBe(true)
      expect((e as Error).message).toMatch(msg)
    }
  })

  test('registry: built-ins, custom by name, unknown name', () => {
    expect(getPolicy('accept-all').evaluate({}, log)).toBe('')
    expect(getPolicy('reject-all').evaluate({}, log)).toBe('reject all')
    expect(getPolicy('example').relevantPcrs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14])
    expect(getPolicy('grub-boot', [doc]).evaluate(null, log)).toBe('')
    expect(() => getPolicy('missing', [doc])).toThrow(/no measured-boot policy named/)
  })
})

describe('policy regexes run in linear time on agent-chosen event text (finding 9 audit)', () => {
  // `.*=.*=.*=x` backtracks cubically in RegExp: ~2 KiB of '=' took seconds at c9aa72c.
  const cubic = 'kernel_cmdline: .*=.*=.*=x'
  const text = (n: number) => `kernel_cmdline: ${'='.repeat(n)}`

  test('rule-policy field patterns', () => {
    const policy = compileRulePolicy({
      name: 'cmdline-only',
      default: 'accept',
      rules: [{ id: 'cmdline', match: { pcr: 8, type: 'EV_IPL' }, fields: { String: cubic } }],
    })
    for (const n of [2048, 16 * 1024]) {
      const hostile = parseEventLog(
        buildAgileLog([{ pcr: 8, type: 13, data: new TextEncoder().encode(`${text(n)}\0`) }]),
      )
      const t0 = performance.now()
      expect(evaluateRulePolicy(policy, hostile)).toContain('does not match')
      expect(performance.now() - t0).toBeLessThan(100)
    }
  })

  test('example-refstate kernel_cmdline', () => {
    const re = compileRegex(cubic, 'kernel_cmdline')
    for (const n of [2048, 16 * 1024]) {
      const t0 = performance.now()
      expect(re.test(text(n))).toBe(false)
      expect(performance.now() - t0).toBeLessThan(100)
    }
    expect(re.test('kernel_cmdline: a=b=c=x')).toBe(true)
  })
})
