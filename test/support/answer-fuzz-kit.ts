/**
 * What the agent-answer fuzz harnesses (`fuzz-check-quote.ts`, `fuzz-evidence.ts`) share: real
 * seeds (a guest's IMA lists and UEFI event logs with the PCR values they replay to, a runtime
 * policy and a measured-boot refstate made from them), a soft TPM that quotes them and re-signs
 * mutated quotes, pools of hostile JSON values, and the mutations of each part of an answer.
 *
 * Everything is drawn from a {@link Prng} seeded per case (`caseSeed` of `test/support/fuzz/fuzz-parser.ts`), so a
 * failing case's seed rebuilds its answer (up to the TPM clock and ECDSA's random `k`).
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  type CompiledRuntimePolicy,
  loadRuntimePolicy,
  replayImaList,
} from '../../src/ima/index.ts'
import { parseEventLog, replayEventLog } from '../../src/mb/index.ts'
import { createRefstate, createRuntimePolicy } from '../../src/policy-tools/index.ts'
import type { HashAlg } from '../../src/tpm/constants.ts'
import { mutate, type Prng } from './fuzz/fuzz-parser.ts'
import { parsePcrBlob } from '../../src/tpm/pcr-blob.ts'
import { parseTpm2bPublic, toKeyObject } from '../../src/tpm/public-area.ts'
import { serializeQuoteString } from '../../src/tpm/quote-string.ts'

/** A quote as the soft TPM gives it. */
export interface FuzzQuote {
  attest: Uint8Array
  signature: Uint8Array
  pcrBlob: Uint8Array
  quote: string
}

/** The soft TPM the harnesses quote and re-sign with (`test/support/fleet/soft-tpm.ts` fits, sha256). */
export interface FuzzTpm {
  readonly akTpm2b: Uint8Array
  readonly ekTpm2b: Uint8Array
  readonly nkPem: string
  quote(nonce: string, pcrs: readonly number[]): FuzzQuote
  signAttest(attest: Uint8Array): Uint8Array
  restorePcr(bank: HashAlg, index: number, value: Uint8Array): void
  resetPcr(index: number): void
  bindNk(): void
}

/** An IMA list seed with the PCR 10 it replays to. */
export interface ImaSeed {
  name: string
  list: string
  pcr10: Uint8Array
}

/** A UEFI event log seed with the sha256 PCRs it replays to. */
export interface MbSeed {
  name: string
  log: Uint8Array
  pcrs: ReadonlyMap<number, Uint8Array>
}

/** The shared material. */
export interface FuzzKit {
  tpm: FuzzTpm
  ima: ImaSeed[]
  mb: MbSeed[]
  /** Runtime policy made from the `vm/b` list (it also allows `vm/a`, its prefix). */
  policyText: string
  policy: CompiledRuntimePolicy
  /** `example` refstate made from the `vm-plain` log. */
  refstate: string
  /** The AK as SPKI PEM (`/verify/evidence` accepts either form). */
  akPem: string
}

const FIX = join(import.meta.dir, '../fixtures')
const IMA_FILES = ['ima/vm/a', 'ima/vm/b'].map((d) => join(FIX, d, 'ascii_runtime_measurements'))
const MB_FILES = [
  'mb/vm-plain/binary_bios_measurements',
  'mb/vm-secureboot/binary_bios_measurements',
  'mb/upstream/binary_bios_measurements',
].map((f) => join(FIX, f))

/** The PCRs a measured-boot round quotes (upstream `MEASUREDBOOT_PCRS`). */
export const MB_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15]

/** Loads the seeds once; `tpm` is the caller's soft TPM (its PCRs are set per case). */
export function buildFuzzKit(tpm: FuzzTpm): FuzzKit {
  const imaSeed = (name: string, list: string): ImaSeed => ({
    name,
    list,
    pcr10: replayImaList(list, ['sha256']).pcr10.get('sha256') as Uint8Array,
  })
  const ima = [
    ...IMA_FILES.map((f) =>
      imaSeed(f.split('/').slice(-2, -1)[0] as string, readFileSync(f, 'utf8')),
    ),
    imaSeed('synthetic', readFileSync(join(FIX, 'ima/synthetic/all-templates.txt'), 'utf8')),
  ]
  const mb = MB_FILES.map((f) => {
    const log = new Uint8Array(readFileSync(f))
    const pcrs = replayEventLog(parseEventLog(log)).pcrs.get('sha256') ?? new Map()
    return { name: f.split('/').slice(-2).join('/'), log, pcrs }
  })
  const policyText = JSON.stringify(createRuntimePolicy({ imaMeasurementList: IMA_FILES[1] }))
  const refstate = JSON.stringify(
    createRefstate(parseEventLog(mb[0]?.log as Uint8Array), { withoutSecureboot: true }),
  )
  const akPem = String(
    toKeyObject(parseTpm2bPublic(tpm.akTpm2b)).export({ format: 'pem', type: 'spki' }),
  )
  return {
    tpm,
    ima,
    mb,
    policyText,
    policy: loadRuntimePolicy(policyText, {}),
    refstate,
    akPem,
  }
}

/** A 1 MiB string (a field of absurd size). */
const HUGE = 'A'.repeat(1 << 20)

/**
 * JSON values of every type, and a few non-JSON primitives (totality, not just the wire). Each
 * call builds fresh objects: a case mutates what it was given, and a value shared between cases
 * would carry one case's mutations (even cycles) into the next.
 */
export const HOSTILE_VALUES: readonly (() => unknown)[] = [
  () => ({ toString: 1 }),
  () => ({ valueOf: 1, toString: 1 }),
  () => ({ toString: {} }),
  () => ({ toJSON: 1 }),
  () => JSON.parse('{"__proto__": {"toString": 1}}'),
  () => JSON.parse('{"constructor": {"prototype": {"toString": 1}}}'),
  () => Object.create(null),
  () => [],
  () => ['sha256'],
  () => [{ toString: 1 }],
  // biome-ignore lint/suspicious/noSparseArray: a sparse array is one of the hostile shapes
  () => [, 1],
  () => ({ length: 2 ** 32 }),
  () => null,
  () => undefined,
  () => true,
  () => false,
  () => 0,
  () => -0,
  () => -1,
  () => 1.5,
  () => 2 ** 53,
  () => -(2 ** 53),
  () => 1e308,
  () => Number.NaN,
  () => Number.POSITIVE_INFINITY,
  () => '',
  () => ' ',
  () => '\u0000',
  () => 'sha256\u0000',
  () => '\uD800',
  () => '\u{1F4A5}',
  () => '-----BEGIN PUBLIC KEY-----',
  () => 'r:::',
  () => '0x10',
]

/** A fresh hostile value (rarely the 1 MiB string). */
export function hostileValue(p: Prng): unknown {
  return p.int(64) === 0 ? HUGE : p.pick(HOSTILE_VALUES)()
}

/** Text of `s` mutated as bytes (1–3 stacked byte mutations of `test/support/fuzz/fuzz-parser.ts`). */
export function mutateText(p: Prng, s: string, encoding: 'utf8' | 'latin1' = 'utf8'): string {
  const b = mutate([Buffer.from(s, encoding)], p.next())
  return Buffer.from(b).toString(encoding)
}

/** Random `[A-Za-z0-9]{20}` (a verifier nonce). */
export function fuzzNonce(p: Prng): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  let s = ''
  for (let i = 0; i < 20; i++) s += abc[p.int(62)]
  return s
}

/**
 * Sets the TPM's sha256 PCRs for a case: all reset, PCR 10 to the IMA seed's value, the MB PCRs to
 * the MB seed's, and (with `scramble`) a few PCRs to random values.
 */
export function setPcrs(kit: FuzzKit, p: Prng, ima?: ImaSeed, mb?: MbSeed, scramble = false): void {
  for (let i = 0; i < 24; i++) kit.tpm.resetPcr(i)
  if (ima !== undefined) kit.tpm.restorePcr('sha256', 10, ima.pcr10)
  if (mb !== undefined) {
    for (const [n, v] of mb.pcrs)
      if (n !== 10 && n !== 16 && n < 24) kit.tpm.restorePcr('sha256', n, v)
  }
  if (scramble) {
    for (let k = 1 + p.int(3); k > 0; k--) kit.tpm.restorePcr('sha256', p.int(24), p.bytes(32))
  }
}

/** The PCRs to quote: 10 and 16, the MB PCRs when asked, and maybe a few more. */
export function quotePcrs(p: Prng, withMb: boolean): number[] {
  const s = new Set([10, 16, ...(withMb ? MB_PCRS : [])])
  if (p.int(4) === 0) for (let k = 1 + p.int(3); k > 0; k--) s.add(p.int(24))
  if (p.int(16) === 0) s.delete(16)
  if (p.int(16) === 0) s.delete(10)
  return [...s]
}

/**
 * A quote mutated past the signature check: mutated TPMS_ATTEST bytes re-signed with the AK; or a
 * mutated PCR blob whose digest is patched into the attest (when the blob still parses) and
 * re-signed; or the quote string mutated as text (signature broken).
 */
export function mutateQuote(kit: FuzzKit, p: Prng, q: FuzzQuote): { quote: string; how: string } {
  const how = p.int(3)
  if (how === 0) {
    const attest = mutate([q.attest], p.next())
    const signature = kit.tpm.signAttest(attest)
    return { quote: serializeQuoteString({ attest, signature, pcrBlob: q.pcrBlob }), how: 'attest' }
  }
  if (how === 1) {
    const pcrBlob = mutate([q.pcrBlob], p.next())
    let attest = q.attest
    try {
      const values = parsePcrBlob(pcrBlob).values
      const h = createHash('sha256')
      for (const v of values) h.update(v.value)
      attest = new Uint8Array(q.attest)
      attest.set(h.digest(), attest.length - 32) // TPMS_QUOTE_INFO.pcrDigest ends the attest
    } catch {
      // a blob that does not parse keeps the old digest
    }
    const signature = kit.tpm.signAttest(attest)
    return { quote: serializeQuoteString({ attest, signature, pcrBlob }), how: 'pcr-blob' }
  }
  return { quote: mutateText(p, q.quote, 'latin1'), how: 'quote-text' }
}

/** Public keys of other shapes (`pubkey`, `tpm_ak`): junk around a key, truncation, two keys. */
export function pemVariant(kit: FuzzKit, p: Prng, pem: string): string {
  switch (p.int(6)) {
    case 0:
      return `junk\n${pem}trailing junk`
    case 1:
      return pem.slice(0, p.int(pem.length))
    case 2:
      return pem + kit.akPem
    case 3:
      return kit.akPem
    case 4:
      return pem.replace('PUBLIC KEY', 'CERTIFICATE')
    default:
      return mutateText(p, pem)
  }
}

/** One of the algorithm names an agent might send (real, wrong case, unknown, empty, long). */
export function algVariant(p: Prng): string {
  return p.pick([
    'sha1',
    'sha256',
    'sha384',
    'sha512',
    'sm3_256',
    'SHA256',
    'rsa',
    'ecc',
    'rsa2048',
    'ecc256',
    'rsassa',
    'rsapss',
    'ecdsa',
    'ecschnorr',
    'md5',
    '',
    'x'.repeat(33),
    '__proto__',
    'constructor',
  ])
}

/** Integers and near-integers for `ima_measurement_list_entry` / `boottime`. */
export function numberVariant(p: Prng, around: number): unknown {
  return p.pick([0, 1, around - 1, around, around + 1, -1, 2 ** 53 - 1, 2 ** 53, 1.5, 1e308, '3'])
}

/** `obj` with prototype-looking keys added (as JSON text would carry them). */
export function withProtoKeys(p: Prng, obj: Record<string, unknown>): unknown {
  const inner = JSON.stringify(obj).slice(1, -1)
  const extra = p.pick([
    '"__proto__": {"quote": "r", "hash_alg": "sha1"}',
    '"constructor": {"prototype": {"hash_alg": {"toString": 1}}}',
    '"toString": 1, "valueOf": {}',
    '"hasOwnProperty": 1',
  ])
  return JSON.parse(`{${extra}${inner === '' ? '' : `, ${inner}`}}`)
}
