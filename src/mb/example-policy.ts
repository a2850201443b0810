/**
 * The `example` measured-boot policy: upstream Keylime's `keylime/mba/elchecking/example.py`
 * semantics re-expressed as plain checks over decoded events, reading the same reference state
 * (`example_reference_state.json`, made by `keylime policy create measured-boot`).
 *
 * Checked: Secure Boot state; S-CRTM and platform firmware blobs (PCR 0); PK/KEK/db/vendor_db keys
 * are subsets of the allowed ones and dbx holds every required entry (PCR 7); the boot applications
 * shim → grub → kernel (PCR 4); initrd, vmlinuz and kernel command line (PCRs 8, 9); MokList/MokListX
 * digests (PCR 14); separators and EV_EFI_ACTION strings; every other (PCR, event type) pair is
 * rejected. Relevant PCRs: 0–9 and 14.
 *
 * Deliberate extensions (documented in docs/measured-boot-policies.md): kernel entries may omit
 * `shim_authcode_sha256` / `grub_authcode_sha256` / `kernel_cmdline` for firmware that starts the
 * kernel's EFI stub directly (absent keys expect absent events); the Linux EFI stub's PCR 9
 * EV_EVENT_TAG events count as the initrd (`initrd_plain_sha256`) and the command line
 * (`load_options_sha256`, sha256 of the UTF-16 LoadOptions); systemd-boot + UKI boots through
 * `systemd_boot_authcode_sha256`, `uki_authcode_sha256` and `uki_sections_sha256` (PCR 11 sections,
 * PCR 12 command line; relevant PCRs then include 11 and 12); a kernel entry that does not fit
 * names every mismatching component; both Spec ID and StartupLocality EV_NO_ACTION events are
 * accepted.
 *
 * @module
 */

import { createHash } from 'node:crypto'
import { compileTextMatcher, type TextMatcher } from '../protocol/linear-regex.ts'
import { MbError } from './errors.ts'
import { describeEvent, type EventView, eventView } from './event-view.ts'
import { EFI_GUID, LINUX_EVENT_TAG } from './event-types.ts'
import type { EventLog } from './parse-event-log.ts'
import type { EfiSignatureList } from './signature-list.ts'

/** `{alg: "0x…"}` as in the refstate. */
export type RefDigest = Record<string, string>
/** `{SignatureOwner, SignatureData: "0x…"}` as in the refstate. */
export interface RefSignature {
  SignatureOwner: string
  SignatureData: string
}

/** One allowed kernel of the refstate. */
export interface RefKernel {
  shim_authcode_sha256?: string
  grub_authcode_sha256?: string
  kernel_authcode_sha256?: string
  vmlinuz_plain_sha256?: string
  initrd_plain_sha256?: string
  kernel_cmdline?: string
  /**
   * keylime-ts extension: sha256 of the EFI stub's LoadOptions (PCR 9 EV_EVENT_TAG); for a UKI also
   * each command-line measurement of systemd in PCR 12.
   */
  load_options_sha256?: string
  /** keylime-ts extension: systemd-boot (the loader before a UKI), Authenticode. */
  systemd_boot_authcode_sha256?: string
  /** keylime-ts extension: the unified kernel image (UKI), Authenticode. */
  uki_authcode_sha256?: string
  /** keylime-ts extension: section name → sha256 of its contents, as systemd-stub measures them in PCR 11. */
  uki_sections_sha256?: Record<string, string>
}

/** The `example` reference state. */
export interface ExampleRefstate {
  has_secureboot: boolean
  scrtm_and_bios: Array<{ scrtm: RefDigest; platform_firmware: RefDigest[] }>
  pk: RefSignature[]
  kek: RefSignature[]
  db: RefSignature[]
  dbx: RefSignature[]
  vendor_db: RefSignature[]
  mokdig: RefDigest[]
  mokxdig: RefDigest[]
  kernels: RefKernel[]
}

/** PCRs the `example` policy needs in the quote (upstream `Example.relevant_pcr_indices`). */
export const EXAMPLE_RELEVANT_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14]

/**
 * The PCRs for `refstate`: {@link EXAMPLE_RELEVANT_PCRS}, plus 11 and 12 (systemd-stub's sections and
 * command line) when a kernel entry describes a UKI, so that those events are bound to the quote.
 */
export function examplePcrsFor(refstate: unknown): readonly number[] {
  const kernels = isObj(refstate) && Array.isArray(refstate.kernels) ? refstate.kernels : []
  const uki = kernels.some(
    (k) => isObj(k) && (k.uki_sections_sha256 !== undefined || k.uki_authcode_sha256 !== undefined),
  )
  return uki ? [...EXAMPLE_RELEVANT_PCRS, 11, 12].sort((a, b) => a - b) : EXAMPLE_RELEVANT_PCRS
}

const HEX = /^0x[0-9a-f]+$/
/** The boot applications of a kernel entry, in the order they run (PCR 4). */
const BOOT_APP_KEYS = [
  'shim_authcode_sha256',
  'grub_authcode_sha256',
  'systemd_boot_authcode_sha256',
  'uki_authcode_sha256',
  'kernel_authcode_sha256',
] as const
const KERNEL_HEX_KEYS = [
  ...BOOT_APP_KEYS,
  'vmlinuz_plain_sha256',
  'initrd_plain_sha256',
  'load_options_sha256',
] as const

function bad(msg: string): never {
  throw new MbError('ERR_MB_REFSTATE', `refstate ${msg}`)
}
function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}
function hex(x: unknown, at: string): string {
  if (typeof x !== 'string' || !HEX.test(x)) bad(`${at} is not 0x followed by lowercase hex digits`)
  return x
}
function digest(x: unknown, at: string): RefDigest {
  if (!isObj(x)) bad(`${at} is not a digest object`)
  const out: RefDigest = {}
  for (const [k, v] of Object.entries(x)) out[k] = hex(v, `${at}.${k}`)
  return out
}
function list<T>(x: unknown, at: string, each: (v: unknown, at: string) => T): T[] {
  if (!Array.isArray(x)) bad(`${at} is not a list`)
  return x.map((v, i) => each(v, `${at}[${i}]`))
}
function sig(x: unknown, at: string): RefSignature {
  if (!isObj(x) || typeof x.SignatureOwner !== 'string') bad(`${at} lacks SignatureOwner`)
  return {
    SignatureOwner: x.SignatureOwner.toLowerCase(),
    SignatureData: hex(x.SignatureData, `${at}.SignatureData`),
  }
}

/**
 * Validates an `example` refstate (upstream `Example.refstate_to_test` checks, relaxed as the module
 * header says) and returns it typed.
 *
 * @throws {MbError} `ERR_MB_REFSTATE` naming the offending key.
 */
export function validateExampleRefstate(x: unknown): ExampleRefstate {
  if (!isObj(x)) bad('is not a JSON object')
  const sb = x.has_secureboot ?? true
  if (typeof sb !== 'boolean') bad('has_secureboot is not a boolean')
  for (const req of ['pk', 'kek', 'db', 'dbx', 'mokdig', 'mokxdig', 'kernels', 'scrtm_and_bios']) {
    if (!(req in x)) bad(`lacks ${req}`)
  }
  const kernels = list(x.kernels, 'kernels', (k, at) => {
    if (!isObj(k)) bad(`${at} is not an object`)
    const out: RefKernel = {}
    for (const key of KERNEL_HEX_KEYS)
      if (k[key] !== undefined) out[key] = hex(k[key], `${at}.${key}`)
    if (k.uki_sections_sha256 !== undefined) {
      const sec = digest(k.uki_sections_sha256, `${at}.uki_sections_sha256`)
      if (Object.keys(sec).length > 64) bad(`${at}.uki_sections_sha256 has more than 64 sections`)
      out.uki_sections_sha256 = sec
    }
    if (k.kernel_cmdline !== undefined) {
      if (typeof k.kernel_cmdline !== 'string') bad(`${at}.kernel_cmdline is not a string`)
      compileRegex(k.kernel_cmdline, `${at}.kernel_cmdline`)
      out.kernel_cmdline = k.kernel_cmdline
    }
    if (Object.keys(out).length === 0) bad(`${at} is empty`)
    return out
  })
  return {
    has_secureboot: sb,
    scrtm_and_bios: list(x.scrtm_and_bios, 'scrtm_and_bios', (e, at) => {
      if (!isObj(e)) bad(`${at} is not an object`)
      return {
        scrtm: digest(e.scrtm, `${at}.scrtm`),
        platform_firmware: list(e.platform_firmware, `${at}.platform_firmware`, digest),
      }
    }),
    pk: list(x.pk, 'pk', sig),
    kek: list(x.kek, 'kek', sig),
    db: list(x.db, 'db', sig),
    dbx: list(x.dbx, 'dbx', sig),
    vendor_db: x.vendor_db === undefined ? [] : list(x.vendor_db, 'vendor_db', sig),
    mokdig: list(x.mokdig, 'mokdig', digest),
    mokxdig: list(x.mokxdig, 'mokxdig', digest),
    kernels,
  }
}

/**
 * Compiles a Python-style regex for full matching (`re.fullmatch`), in linear time: it is matched
 * against the kernel command line the agent's event log reports.
 */
export function compileRegex(src: string, at: string): TextMatcher {
  if (src.length > 4096)
    throw new MbError('ERR_MB_REFSTATE', `${at} is longer than 4096 characters`)
  try {
    return compileTextMatcher(src, 'full', 's')
  } catch {
    throw new MbError('ERR_MB_REFSTATE', `${at} is not a valid regular expression`)
  }
}

const strip = (h: string): string => h.slice(2)

/** True when the event has a digest equal to one of `good` (any algorithm). */
function digestIn(v: EventView, good: readonly RefDigest[]): boolean {
  for (const g of good)
    for (const [alg, h] of Object.entries(g)) if (v.digests[alg] === strip(h)) return true
  return false
}
function showDigest(v: EventView): string {
  const alg = v.digests.sha256 !== undefined ? 'sha256' : (Object.keys(v.digests)[0] ?? 'none')
  return `${alg}:${v.digests[alg] ?? ''}`
}

const ACTION_STRINGS: Readonly<Record<number, readonly string[]>> = {
  1: ['Entering ROM Based Setup'],
  4: [
    'Calling EFI Application from Boot Option',
    'Returning from EFI Application from Boot Option',
  ],
  5: [
    'Exit Boot Services Invocation',
    'Exit Boot Services Returned with Failure',
    'Exit Boot Services Returned with Success',
  ],
  6: ['UEFI Debug Mode'],
}

const ACTION_HASHES = new Map<string, RefDigest>()

function actionHashes(s: string): RefDigest {
  let h = ACTION_HASHES.get(s)
  if (h === undefined) {
    h = hashesOf(s)
    if (ACTION_HASHES.size < 64) ACTION_HASHES.set(s, h)
  }
  return h
}

function hashesOf(data: Uint8Array | string): RefDigest {
  const out: RefDigest = {}
  for (const alg of ['sha1', 'sha256', 'sha384', 'sha512'])
    out[alg] = `0x${createHash(alg).update(data).digest('hex')}`
  return out
}
const SEPARATOR_OK = [hashesOf(new Uint8Array(4)), hashesOf(new Uint8Array([255, 255, 255, 255]))]

type KeyCheck = 'subset' | 'subset-db' | 'superset'

function keysReason(
  lists: EfiSignatureList[] | undefined,
  allowed: RefSignature[],
  mode: KeyCheck,
): string {
  if (lists === undefined) return 'has no signature lists'
  const set = new Set(allowed.map((s) => `${s.SignatureOwner}/${strip(s.SignatureData)}`))
  if (mode === 'superset') {
    if (lists.length !== 1) return `has ${lists.length} signature lists, expected 1`
    const l = lists[0] as EfiSignatureList
    if (l.SignatureType !== EFI_GUID.CERT_SHA256)
      return `signature list type ${l.SignatureType} is not EFI_CERT_SHA256`
    const have = new Set(l.Keys.map((k) => `${k.SignatureOwner}/${k.SignatureData}`))
    const missing = [...set].filter((k) => !have.has(k))
    return missing.length === 0
      ? ''
      : `lacks ${missing.length} required dbx entries, e.g. ${missing[0]?.slice(0, 100)}`
  }
  const types: string[] =
    mode === 'subset-db' ? [EFI_GUID.CERT_X509, EFI_GUID.CERT_SHA256] : [EFI_GUID.CERT_X509]
  for (const [i, l] of lists.entries()) {
    if (!types.includes(l.SignatureType)) return `signature list ${i} has type ${l.SignatureType}`
    for (const k of l.Keys) {
      if (!set.has(`${k.SignatureOwner}/${k.SignatureData}`)) {
        return `signature list ${i} has a key not in the reference state (owner ${k.SignatureOwner}, data 0x${k.SignatureData.slice(0, 32)}…)`
      }
    }
  }
  return ''
}

interface Collected {
  bsas: EventView[]
  ipl9s: EventView[]
  vmlinuz: EventView[]
  cmdlines: EventView[]
  loadOptions: EventView[]
  /** systemd-stub's PCR 11 events: each UKI section's name, then its contents. */
  ukiSections: EventView[]
  /** systemd's PCR 12 command-line events. */
  sdCmdlines: EventView[]
  scrtms: EventView[]
  blobs: EventView[]
}

function tupleReason(
  name: string,
  events: EventView[],
  expected: Array<(v: EventView) => string>,
): string {
  if (events.length !== expected.length) {
    const first = events[expected.length] ?? events[0]
    const where = first === undefined ? '' : `; first extra: ${describeEvent(first)}`
    return `${name}: ${events.length} events, expected ${expected.length}${where}`
  }
  for (const [i, ev] of events.entries()) {
    const r = (expected[i] as (v: EventView) => string)(ev)
    if (r) return `${name}[${i}] ${describeEvent(ev)} ${r}`
  }
  return ''
}
const digestIs =
  (h: string, key: string) =>
  (v: EventView): string =>
    v.digests.sha256 === strip(h) ? '' : `has ${showDigest(v)}, expected ${key} ${h}`

const NAME_DIGESTS = new Map<string, string>()

/** sha256 of a section name as systemd-stub measures it (ASCII with its NUL). */
function sectionNameDigest(name: string): string {
  let h = NAME_DIGESTS.get(name)
  if (h === undefined) {
    h = createHash('sha256').update(`${name}\0`).digest('hex')
    if (NAME_DIGESTS.size < 64) NAME_DIGESTS.set(name, h)
  }
  return h
}

/**
 * systemd-stub measures each UKI section it uses into PCR 11 as two events, both described by the
 * section name: the name, then the contents. They must be exactly the refstate's sections, in order.
 */
function ukiSectionsReason(want: Record<string, string> | undefined, events: EventView[]): string {
  const names = Object.keys(want ?? {})
  if (events.length !== names.length * 2) {
    const first = events[names.length * 2] ?? events[0]
    const where = first === undefined ? '' : `; first: ${describeEvent(first)}`
    return `UKI sections (PCR 11): ${events.length} events, expected ${names.length * 2}${where}`
  }
  for (const [i, name] of names.entries()) {
    const [n, data] = [events[2 * i] as EventView, events[2 * i + 1] as EventView]
    if (n.fields.String !== name || n.digests.sha256 !== sectionNameDigest(name))
      return `UKI section ${name}: ${describeEvent(n)} is not its name measurement`
    const h = (want as Record<string, string>)[name] as string
    if (data.fields.String !== name || data.digests.sha256 !== strip(h))
      return `UKI section ${name}: ${describeEvent(data)} has ${showDigest(data)}, expected ${h}`
  }
  return ''
}

/**
 * Why `k` does not describe the logged boot: every mismatching component (boot applications,
 * initrd, vmlinuz, LoadOptions, command line), so that one change that moves two measurements (QEMU
 * patches the initrd size into the kernel header it hands to OVMF) names both. `''` when it does.
 */
function kernelReason(k: RefKernel, c: Collected, sb: boolean): string {
  const reasons: string[] = []
  const apps: Array<[string, string]> = []
  for (const key of BOOT_APP_KEYS) {
    const h = k[key]
    if (h !== undefined) apps.push([key, h])
  }
  const tests = apps.map(([key, h]) => digestIs(h, key))
  let r = tupleReason('boot applications', c.bsas, tests)
  if (r && k.kernel_authcode_sha256 !== undefined) {
    // Upstream: the kernel is sometimes measured twice.
    const twice = [...tests, digestIs(k.kernel_authcode_sha256, 'kernel_authcode_sha256')]
    if (!tupleReason('boot applications', c.bsas, twice)) r = ''
  }
  reasons.push(r)
  const initrd = k.initrd_plain_sha256
  reasons.push(
    tupleReason(
      'initrd',
      c.ipl9s,
      initrd === undefined ? [] : [digestIs(initrd, 'initrd_plain_sha256')],
    ),
  )
  const vml = k.vmlinuz_plain_sha256
  const vmlTest = vml === undefined || sb ? () => '' : digestIs(vml, 'vmlinuz_plain_sha256')
  reasons.push(
    tupleReason('vmlinuz', c.vmlinuz, vml === undefined && c.vmlinuz.length === 0 ? [] : [vmlTest]),
  )
  const lo = k.load_options_sha256
  reasons.push(
    tupleReason(
      'EFI stub load options',
      c.loadOptions,
      lo === undefined ? [] : [digestIs(lo, 'load_options_sha256')],
    ),
  )
  reasons.push(
    tupleReason(
      'systemd command line',
      c.sdCmdlines,
      c.sdCmdlines.map(() =>
        lo === undefined ? () => 'is not expected' : digestIs(lo, 'load_options_sha256'),
      ),
    ),
    ukiSectionsReason(k.uki_sections_sha256, c.ukiSections),
  )
  const cl = k.kernel_cmdline
  if (cl === undefined) reasons.push(tupleReason('kernel command line', c.cmdlines, []))
  else {
    const re = compileRegex(`kernel_cmdline: ${cl}`, 'kernel_cmdline')
    reasons.push(
      tupleReason('kernel command line', c.cmdlines, [
        (v) =>
          re.test(v.fields.String ?? '')
            ? ''
            : `${JSON.stringify((v.fields.String ?? '').slice(0, 200))} does not match kernel_cmdline`,
      ]),
    )
  }
  return reasons.filter((x) => x !== '').join('; ')
}

/**
 * Evaluates a parsed log against an `example` refstate. Returns `''` when the log is acceptable,
 * otherwise a reason naming the first offending event.
 *
 * @throws {MbError} `ERR_MB_REFSTATE` when the refstate is invalid.
 */
export function evaluateExample(refstateJson: unknown, log: EventLog): string {
  const ref = validateExampleRefstate(refstateJson)
  const c: Collected = {
    bsas: [],
    ipl9s: [],
    vmlinuz: [],
    cmdlines: [],
    loadOptions: [],
    ukiSections: [],
    sdCmdlines: [],
    scrtms: [],
    blobs: [],
  }
  const once = new Set<string>()
  const onceOk = (key: string): string => {
    if (once.has(key)) return 'appears more than once'
    once.add(key)
    return ''
  }
  let configFlags = 0
  const sb = ref.has_secureboot
  const keysOrAccept = (
    key: string,
    allowed: RefSignature[],
    mode: KeyCheck,
    lists?: EfiSignatureList[],
  ): string => onceOk(key) || (!sb && allowed.length === 0 ? '' : keysReason(lists, allowed, mode))

  for (const ev of log.events) {
    const v = eventView(ev)
    const d = ev.decoded
    const s = v.fields.String ?? ''
    const k = `${v.pcr}/${v.type}`
    let reason: string
    switch (k) {
      case '0/EV_NO_ACTION':
        reason = ''
        break
      case '1/EV_CPU_MICROCODE':
      case '1/EV_EFI_HANDOFF_TABLES':
      case '1/EV_EFI_HANDOFF_TABLES2':
      case '5/EV_EFI_GPT_EVENT':
        reason = onceOk(k)
        break
      case '1/EV_PLATFORM_CONFIG_FLAGS':
        reason = ++configFlags > 4 ? 'appears more than 4 times' : ''
        break
      case '0/EV_S_CRTM_VERSION':
        c.scrtms.push(v)
        reason = ''
        break
      case '0/EV_EFI_PLATFORM_FIRMWARE_BLOB':
      case '0/EV_EFI_PLATFORM_FIRMWARE_BLOB2':
        c.blobs.push(v)
        reason = ''
        break
      case '2/EV_EFI_BOOT_SERVICES_DRIVER':
        reason = ''
        break
      case '7/EV_EFI_VARIABLE_DRIVER_CONFIG': {
        if (d.kind !== 'variable') {
          reason = 'cannot be decoded'
          break
        }
        const name = `${d.variableName}/${d.unicodeName}`
        const G = EFI_GUID.GLOBAL_VARIABLE
        const DB = EFI_GUID.IMAGE_SECURITY_DATABASE
        if (name === `${G}/SecureBoot`) {
          const want = sb ? 'Yes' : 'No'
          reason = d.enabled === want ? '' : `SecureBoot is ${d.enabled ?? '?'}, expected ${want}`
        } else if (name === `${G}/PK`)
          reason = keysOrAccept(name, ref.pk, 'subset', d.signatureLists)
        else if (name === `${G}/KEK`)
          reason = keysOrAccept(name, ref.kek, 'subset', d.signatureLists)
        else if (name === `${DB}/db`)
          reason = keysOrAccept(name, ref.db, 'subset-db', d.signatureLists)
        else if (name === `${DB}/vendor_db`)
          reason = keysOrAccept(name, ref.vendor_db, 'subset-db', d.signatureLists)
        else if (name === `${DB}/dbx`)
          reason = keysOrAccept(name, ref.dbx, 'superset', d.signatureLists)
        else reason = `has unexpected variable ${d.unicodeName} (${d.variableName})`
        break
      }
      case '7/EV_EFI_VARIABLE_AUTHORITY': {
        if (d.kind !== 'variable') {
          reason = 'cannot be decoded'
          break
        }
        const name = `${d.variableName}/${d.unicodeName}`
        const DB = EFI_GUID.IMAGE_SECURITY_DATABASE
        const SHIM = EFI_GUID.SHIM_LOCK
        if (
          name === `${DB}/db` ||
          name === `${SHIM}/SbatLevel` ||
          name === `${SHIM}/Shim` ||
          name === `${SHIM}/MokListRT`
        ) {
          reason = onceOk(`auth/${name}`)
        } else if (name === `${SHIM}/MokListTrusted`) reason = onceOk(`auth/${name}`)
        else if (name === `${DB}/vendor_db`) {
          reason = onceOk(`auth/${name}`)
          if (!reason && (sb || ref.vendor_db.length > 0)) {
            const sg = d.signature
            const ok =
              sg !== undefined &&
              ref.vendor_db.some(
                (r) =>
                  r.SignatureOwner === sg.SignatureOwner &&
                  strip(r.SignatureData) === sg.SignatureData,
              )
            reason = ok ? '' : 'vendor_db signature is not in the reference state'
          }
        } else reason = `has unexpected variable ${d.unicodeName} (${d.variableName})`
        break
      }
      case '1/EV_EFI_VARIABLE_BOOT':
      case '1/EV_EFI_VARIABLE_BOOT2':
        reason =
          v.fields.VariableName === EFI_GUID.GLOBAL_VARIABLE &&
          /^(?:BootOrder|Boot[0-9a-fA-F]+)$/.test(v.fields.UnicodeName ?? '')
            ? ''
            : `has unexpected boot variable ${v.fields.UnicodeName ?? '?'}`
        break
      case '1/EV_EFI_ACTION':
      case '4/EV_EFI_ACTION':
      case '5/EV_EFI_ACTION': {
        const ok = (ACTION_STRINGS[v.pcr] ?? []).includes(s) && digestIn(v, [actionHashes(s)])
        reason = ok ? '' : `has unexpected action ${JSON.stringify(s.slice(0, 100))} or digest`
        break
      }
      case '4/EV_EFI_BOOT_SERVICES_APPLICATION':
        c.bsas.push(v)
        reason = ''
        break
      case '14/EV_IPL':
        if (s === 'MokList')
          reason = digestIn(v, ref.mokdig) ? '' : `MokList digest ${showDigest(v)} not in mokdig`
        else if (s === 'MokListX')
          reason = digestIn(v, ref.mokxdig) ? '' : `MokListX digest ${showDigest(v)} not in mokxdig`
        else if (s === 'MokListTrusted') reason = onceOk('ipl/MokListTrusted')
        else reason = `has unexpected string ${JSON.stringify(s.slice(0, 100))}`
        break
      case '9/EV_IPL':
        if (/\/loader\/entries|\/grub/s.test(s)) reason = ''
        else if (/\/vmlinuz/s.test(s)) {
          c.vmlinuz.push(v)
          reason = ''
        } else if (/\/initrd|\/initramfs/s.test(s)) {
          c.ipl9s.push(v)
          reason = ''
        } else reason = `has unexpected string ${JSON.stringify(s.slice(0, 100))}`
        break
      case '8/EV_IPL':
        if (s.startsWith('grub_cmd: ')) reason = ''
        else if (s.startsWith('kernel_cmdline: ')) {
          c.cmdlines.push(v)
          reason = ''
        } else reason = `has unexpected string ${JSON.stringify(s.slice(0, 100))}`
        break
      case '11/EV_IPL':
        c.ukiSections.push(v)
        reason = ''
        break
      case '12/EV_IPL':
        c.sdCmdlines.push(v)
        reason = ''
        break
      case '9/EV_EVENT_TAG': {
        const tags = d.kind === 'tagged' ? d.tags : []
        const only = tags.length === 1 ? tags[0] : undefined
        if (only?.id === LINUX_EVENT_TAG.INITRD) c.ipl9s.push(v)
        else if (only?.id === LINUX_EVENT_TAG.LOAD_OPTIONS) c.loadOptions.push(v)
        reason =
          only?.id === LINUX_EVENT_TAG.INITRD || only?.id === LINUX_EVENT_TAG.LOAD_OPTIONS
            ? ''
            : 'has unexpected tagged event'
        break
      }
      default:
        if (v.type === 'EV_SEPARATOR' && v.pcr <= 7) {
          reason =
            (v.fields.Event === '00000000' || v.fields.Event === 'ffffffff') &&
            digestIn(v, SEPARATOR_OK)
              ? ''
              : 'is not a valid separator'
        } else reason = 'has unexpected (PCRIndex, EventType) combination'
    }
    if (reason) return `${describeEvent(v)} ${reason}`
  }

  // Delayed checks: one allowed kernel, and one allowed S-CRTM/firmware combination.
  const kernelReasons = ref.kernels.map((k, i) => {
    const r = kernelReason(k, c, sb)
    return r ? `kernels[${i}]: ${r}` : ''
  })
  if (!kernelReasons.includes(''))
    return kernelReasons.join('; ') || 'no kernels in the reference state'
  const biosReasons = ref.scrtm_and_bios.map((b, i) => {
    const r =
      tupleReason('S-CRTM', c.scrtms, [
        (v) => (digestIn(v, [b.scrtm]) ? '' : `has ${showDigest(v)}, not scrtm`),
      ]) ||
      tupleReason(
        'platform firmware',
        c.blobs,
        b.platform_firmware.map(
          (p) => (v: EventView) =>
            digestIn(v, [p]) ? '' : `has ${showDigest(v)}, not ${JSON.stringify(p)}`,
        ),
      )
    return r ? `scrtm_and_bios[${i}]: ${r}` : ''
  })
  if (!biosReasons.includes(''))
    return biosReasons.join('; ') || 'no scrtm_and_bios in the reference state'
  return ''
}
