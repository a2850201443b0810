import { describe, expect, test } from 'bun:test'
import { buildAgileLog, edgeCases, grubStyleEvents } from '../../test/fixtures/mb/synthetic.ts'
import { formatDevicePath } from './device-path.ts'
import { formatGuid, parseGuid } from './efi-text.ts'
import { isMbError, type MbErrorCode } from './errors.ts'
import { parseEventLog } from './parse-event-log.ts'
import { replayEventLog } from './replay-event-log.ts'
import { parseSignatureLists } from './signature-list.ts'

const cases = edgeCases()
const bytes = (n: string): Uint8Array => cases[n] as Uint8Array

function codeOf(f: () => unknown): {
  code: MbErrorCode
  eventIndex: number | undefined
  offset: number | undefined
} {
  try {
    f()
  } catch (e) {
    if (isMbError(e)) return { code: e.code, eventIndex: e.eventIndex, offset: e.offset }
    throw e
  }
  throw new Error('did not throw')
}

describe('parseEventLog', () => {
  test('crypto-agile synthetic log: events, digests, decoded strings', () => {
    const log = parseEventLog(bytes('good-agile.bin'))
    expect(log.format).toBe('crypto-agile')
    expect(log.algorithms.map((a) => a.alg)).toEqual(['sha1', 'sha256'])
    expect(log.events.map((e) => e.typeName)).toEqual([
      'EV_NO_ACTION',
      'EV_S_CRTM_VERSION',
      'EV_EFI_PLATFORM_FIRMWARE_BLOB',
      'EV_EFI_BOOT_SERVICES_APPLICATION',
      'EV_IPL',
      'EV_IPL',
      'EV_IPL',
      'EV_SEPARATOR',
    ])
    expect(log.events[5]?.decoded).toEqual({
      kind: 'string',
      string: 'kernel_cmdline: /vmlinuz root=/dev/sda1 quiet',
    })
    expect(log.events[7]?.decoded).toEqual({ kind: 'separator', value: '00000000', error: false })
    expect(log.events[1]?.digests.map((d) => d.digest.length)).toEqual([20, 32])
  })

  test('legacy SHA1 log parses and replays the sha1 bank only', () => {
    const log = parseEventLog(bytes('good-sha1.bin'))
    expect(log.format).toBe('sha1')
    expect(log.events).toHaveLength(grubStyleEvents().length)
    const agile = replayEventLog(parseEventLog(bytes('good-agile.bin')))
    const legacy = replayEventLog(log)
    expect([...legacy.pcrs.keys()]).toEqual(['sha1'])
    expect(legacy.pcrs.get('sha1')?.get(8)).toEqual(agile.pcrs.get('sha1')?.get(8) as Uint8Array)
  })

  test('unknown event types are kept raw with a stable name', () => {
    const log = parseEventLog(bytes('unknown-type.bin'))
    expect(log.events[1]?.typeName).toBe('EV_UNKNOWN_0x1234')
    expect(log.events[1]?.decoded).toEqual({ kind: 'raw' })
    expect(new TextDecoder().decode(log.events[1]?.data)).toBe('opaque')
  })

  test.each([
    ['truncated.bin', 'ERR_MB_TRUNCATED'],
    ['huge-event-size.bin', 'ERR_MB_EVENT_SIZE'],
    ['zero-digests.bin', 'ERR_MB_DIGEST_COUNT'],
    ['specid-size-mismatch.bin', 'ERR_MB_SPEC_ID'],
    ['pcr-out-of-range.bin', 'ERR_MB_PCR_INDEX'],
    ['unknown-alg-digest.bin', 'ERR_MB_UNKNOWN_ALG'],
  ] as const)('%s → %s with event index and offset', (name, code) => {
    const err = codeOf(() => parseEventLog(bytes(name)))
    expect(err.code).toBe(code)
    if (name !== 'specid-size-mismatch.bin') expect(err.eventIndex).toBeGreaterThan(0)
    expect(typeof err.offset).toBe('number')
  })

  test('empty log is ERR_MB_EMPTY; garbage is a typed error', () => {
    expect(codeOf(() => parseEventLog(new Uint8Array(0))).code).toBe('ERR_MB_EMPTY')
    expect(codeOf(() => parseEventLog(new Uint8Array(7))).code).toBe('ERR_MB_TRUNCATED')
  })

  test('StartupLocality sets PCR0 initial value; EV_NO_ACTION is never extended', () => {
    const loc = new Uint8Array([...new TextEncoder().encode('StartupLocality'), 0, 3])
    const withLoc = replayEventLog(parseEventLog(buildAgileLog([{ pcr: 0, type: 3, data: loc }])))
    const pcr0 = withLoc.pcrs.get('sha256')?.get(0) as Uint8Array
    expect(withLoc.startupLocality).toBe(3)
    expect(pcr0[31]).toBe(3)
    expect(pcr0.subarray(0, 31).every((b) => b === 0)).toBe(true)
    const other = replayEventLog(
      parseEventLog(buildAgileLog([{ pcr: 5, type: 3, data: new Uint8Array(20) }])),
    )
    expect(
      other.pcrs
        .get('sha1')
        ?.get(5)
        ?.every((b) => b === 0),
    ).toBe(true)
  })
})

describe('EFI helpers', () => {
  test('GUID round trip (mixed endian)', () => {
    const g = '8be4df61-93ca-11d2-aa0d-00e098032b8c'
    expect(formatGuid(parseGuid(g))).toBe(g)
    expect(parseGuid(g)[0]).toBe(0x61)
  })

  test('device path: HD + file path; malformed node is marked, not thrown', () => {
    const hd = new Uint8Array(42)
    hd.set([4, 1, 42, 0, 1, 0, 0, 0, 0, 8])
    hd[40] = 2
    hd[41] = 2
    const name = new TextEncoder().encode('\\EFI\\x')
    const fp = new Uint8Array(4 + name.length * 2 + 2)
    fp.set([4, 4, fp.length, 0])
    name.forEach((c, i) => {
      fp[4 + 2 * i] = c
    })
    const end = [0x7f, 0xff, 4, 0]
    const path = Uint8Array.from([...hd, ...fp, ...end])
    expect(formatDevicePath(path)).toBe(
      'HD(1,GPT,00000000-0000-0000-0000-000000000000,0x800,0x0)/\\EFI\\x',
    )
    expect(formatDevicePath(Uint8Array.from([4, 4, 200, 0]))).toContain('malformed')
  })

  test('signature lists: bad sizes are typed errors', () => {
    expect(parseSignatureLists(new Uint8Array(0))).toEqual([])
    const bad = new Uint8Array(28)
    new DataView(bad.buffer).setUint32(16, 1000, true)
    expect(() => parseSignatureLists(bad)).toThrow(/EFI_SIGNATURE_LIST/)
  })
})
