/**
 * Phase 1 of a push attestation (push-protocol.md §1.5.5, upstream `TPMEngine._validate_*` and
 * `process_capabilities`): reads the agent's `evidence_supported`, checks it (422 with JSON
 * pointers) and chooses what to request, in the order tpm_quote, uefi_log, ima_log:
 *
 * - the quote over the PCRs the policies need (tpm_policy, MB PCRs with an MB policy, PCR 10 with
 *   a runtime policy; PCR 0 when none is needed, where upstream requests no quote at all), with the agent's first accepted signature scheme and hash (the bank of that
 *   hash carries the PCR list, the other offered banks `null`), a fresh 16-byte challenge, and the
 *   certification key whose `public` is the enrolled AK (else `server_identifier == "ak"`);
 * - the UEFI log with an MB policy; the IMA log with a runtime policy, from the entry after the
 *   last passed attestation's (0 after a reboot).
 *
 * Pure: the caller gives the agent's policies and the last passed attestation.
 *
 * @module
 */
import { randomBytes } from 'node:crypto'
import { isAccepted } from '../../protocol/algorithms.ts'
import { BodyReader, isObj } from './body-reader.ts'
import { invalidData } from './json-api.ts'
import type { NewEvidenceItem } from '../store/attestations.ts'

/** What the verifier knows of the agent when choosing. */
export interface SelectionContext {
  /** PCRs the static policy constrains. */
  tpmPolicyPcrs: readonly number[]
  /** The MB policy is active (MB PCRs and the UEFI log are requested). */
  mbActive: boolean
  /** The runtime policy is more than the empty one (PCR 10 and the IMA log are requested). */
  imaActive: boolean
  acceptHash: readonly unknown[]
  acceptSign: readonly unknown[]
  /** The enrolled AK, base64 TPM2B_PUBLIC. */
  akTpm: string
  /** The last attestation that passed: its boot time and where its IMA log ended. */
  lastPassed?: { bootTime: string; imaNextEntry: number | undefined }
}

/** The chosen evidence, as rows to store, and the reported boot time. */
export interface Selection {
  items: NewEvidenceItem[]
  bootTime: string
}

const BASE = '/data/attributes/evidence_supported'
const MB_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15]
const BANKS = new Set(['sha1', 'sha256', 'sha384', 'sha512', 'sm3_256'])
/** Signature schemes a key algorithm can make. */
const SCHEMES_OF: Readonly<Record<string, readonly string[]>> = {
  rsa: ['rsassa', 'rsapss'],
  ecc: ['ecdsa', 'ecschnorr', 'sm2'],
}

/** The text members of a certification key the rust `CertificationKey` requires. */
const KEY_TEXT_MEMBERS = [
  'key_class',
  'key_algorithm',
  'server_identifier',
  'local_identifier',
  'public',
] as const

interface Offer {
  cls: string
  type: string
  caps: Record<string, unknown>
  at: string
}

/** The PCRs a quote must cover for these policies (ascending). */
export function requiredPcrs(ctx: SelectionContext): number[] {
  const s = new Set(ctx.tpmPolicyPcrs)
  if (ctx.mbActive) for (const n of MB_PCRS) s.add(n)
  if (ctx.imaActive) s.add(10)
  return [...s].sort((a, b) => a - b)
}

/**
 * Checks `attributes` (the request's `data.attributes`) and chooses the evidence to request.
 *
 * @throws PushError 422 with pointers for a malformed or unusable offer
 */
export function selectEvidence(
  attributes: Record<string, unknown>,
  ctx: SelectionContext,
): Selection {
  const rd = new BodyReader()
  const at = '/data/attributes'
  const list = rd.list(attributes, 'evidence_supported', at) ?? []
  const sys = rd.obj(attributes, 'system_info', at, !ctx.imaActive)
  const bootText =
    sys === undefined
      ? undefined
      : rd.str(sys, 'boot_time', `${at}/system_info`, !ctx.imaActive, 64)
  const boot = bootText === undefined ? undefined : Date.parse(bootText)
  if (bootText !== undefined && !Number.isFinite(boot)) {
    rd.problem(`${at}/system_info/boot_time`, 'must be an ISO 8601 time')
  }
  const offers: Offer[] = []
  for (const [i, v] of list.entries()) {
    const p = `${BASE}/${i}`
    if (!isObj(v)) {
      rd.problem(p, 'must be an object')
      continue
    }
    const cls = rd.str(v, 'evidence_class', p, false, 64)
    const type = rd.str(v, 'evidence_type', p, false, 64)
    const caps = rd.obj(v, 'capabilities', p)
    if (cls !== undefined && type !== undefined && caps !== undefined)
      offers.push({ cls, type, caps, at: `${p}/capabilities` })
  }
  rd.done()
  const items: NewEvidenceItem[] = []
  // always a quote: only the TPM's signature over the fresh challenge shows the agent alive (an
  // empty attestation would defeat the timeout); with no PCR required, PCR 0 keeps it non-empty
  const required = requiredPcrs(ctx)
  const pcrs = required.length > 0 ? required : [0]
  const quote = offers.find((o) => o.cls === 'certification' && o.type === 'tpm_quote')
  if (quote === undefined) throw invalidData([{ pointer: BASE, detail: 'a tpm_quote is required' }])
  items.push(quoteItem(rd, quote, pcrs, ctx))
  const uefi = offers.find((o) => o.cls === 'log' && o.type === 'uefi_log')
  if (ctx.mbActive && uefi !== undefined) {
    const item = logItem(rd, uefi, 'application/octet-stream')
    if (item !== undefined) items.push(item)
  }
  const ima = offers.find((o) => o.cls === 'log' && o.type === 'ima_log')
  if (ctx.imaActive && ima !== undefined) {
    const item = logItem(rd, ima, 'text/plain')
    if (item?.capabilities__supports_partial_access) {
      item.chosen_parameters__starting_offset = imaOffset(rd, ima, item, bootText, ctx)
      items.push(item)
    }
  }
  rd.done()
  return { items, bootTime: bootText ?? new Date(0).toISOString() }
}

/** The IMA starting offset (upstream's rule on boot times); a problem when it cannot be. */
function imaOffset(
  rd: BodyReader,
  offer: Offer,
  item: NewEvidenceItem,
  bootText: string | undefined,
  ctx: SelectionContext,
): number {
  const last = ctx.lastPassed
  if (last === undefined || bootText === undefined) return 0
  const boot = Date.parse(bootText)
  const prev = Date.parse(last.bootTime)
  if (boot > prev) return 0
  if (boot < prev) {
    rd.problem('/data/attributes/system_info/boot_time', 'is older than the last attestation')
    return 0
  }
  const offset = last.imaNextEntry ?? 0
  if (offset > (item.capabilities__entry_count ?? 0)) {
    rd.problem(`${offer.at}/entry_count`, 'is less than the entries already attested')
  }
  return offset
}

/** The tpm_quote request: scheme, hash, bank, key and a fresh challenge. */
function quoteItem(
  rd: BodyReader,
  o: Offer,
  pcrs: readonly number[],
  ctx: SelectionContext,
): NewEvidenceItem {
  const version = rd.str(o.caps, 'component_version', o.at, false, 32)
  const hashes = rd.strList(o.caps, 'hash_algorithms', o.at) ?? []
  const schemes = rd.strList(o.caps, 'signature_schemes', o.at) ?? []
  const subjects = rd.obj(o.caps, 'available_subjects', o.at) ?? {}
  const keys = rd.list(o.caps, 'certification_keys', o.at) ?? []
  rd.done()
  if (version !== '2.0') rd.problem(`${o.at}/component_version`, 'must be "2.0"')
  const banks = new Map<string, number[]>()
  for (const [bank, v] of Object.entries(subjects)) {
    const p = `${o.at}/available_subjects/${bank}`
    if (!BANKS.has(bank)) rd.problem(p, 'is not a PCR bank')
    else if (!hashes.includes(bank)) rd.problem(p, 'is not in hash_algorithms')
    else if (
      !Array.isArray(v) ||
      v.length > 32 ||
      !v.every((n) => Number.isInteger(n) && n >= 0 && n < 32)
    )
      rd.problem(p, 'must be a list of PCR numbers')
    else banks.set(bank, v as number[])
  }
  if (![...banks.keys()].some((b) => isAccepted(b, ctx.acceptHash)))
    rd.problem(`${o.at}/available_subjects`, 'offers no bank the agent is allowed to use')
  const key = chooseKey(rd, keys, o.at, ctx)
  rd.done()
  const keyHashes = key.allowable_hash_algorithms as string[]
  const keySchemes = key.allowable_signature_schemes as string[]
  const scheme = ctx.acceptSign
    .map(String)
    .find((s) => schemes.includes(s) && keySchemes.includes(s))
  const bank = ctx.acceptHash
    .map(String)
    .find((h) => keyHashes.includes(h) && pcrs.every((n) => banks.get(h)?.includes(n)))
  if (scheme === undefined)
    rd.problem(
      `${o.at}/signature_schemes`,
      'offers no signature scheme the agent is allowed to use',
    )
  if (bank === undefined)
    rd.problem(`${o.at}/available_subjects`, `no allowed bank offers all of PCRs ${pcrs.join(',')}`)
  rd.done()
  const selected: Record<string, number[] | null> = {}
  for (const b of banks.keys()) selected[b] = b === bank ? [...pcrs] : null
  return {
    evidence_class: 'certification',
    evidence_type: 'tpm_quote',
    capabilities__component_version: version,
    capabilities__hash_algorithms: JSON.stringify(hashes),
    capabilities__signature_schemes: JSON.stringify(schemes),
    capabilities__available_subjects: JSON.stringify(Object.fromEntries(banks)),
    capabilities__certification_keys: JSON.stringify(keys),
    chosen_parameters__challenge: new Uint8Array(randomBytes(16)),
    chosen_parameters__signature_scheme: scheme,
    chosen_parameters__hash_algorithm: bank,
    chosen_parameters__selected_subjects: JSON.stringify(selected),
    chosen_parameters__certification_key: JSON.stringify(key),
  }
}

/** The certification key: the enrolled AK first, then one named `ak`; complete and usable. */
function chooseKey(
  rd: BodyReader,
  keys: readonly unknown[],
  at: string,
  ctx: SelectionContext,
): Record<string, unknown> {
  const usable: Record<string, unknown>[] = []
  for (const [i, k] of keys.entries()) {
    const p = `${at}/certification_keys/${i}`
    if (!isObj(k)) {
      rd.problem(p, 'must be an object')
      continue
    }
    const r = new BodyReader()
    for (const f of KEY_TEXT_MEMBERS) r.str(k, f, p)
    r.uint(k, 'key_size', p)
    r.strList(k, 'allowable_hash_algorithms', p)
    r.strList(k, 'allowable_signature_schemes', p)
    for (const q of r.problems) rd.problem(q.pointer, q.detail)
    if (r.problems.length > 0) continue
    const alg = k.key_algorithm as string
    const canSign = (SCHEMES_OF[alg] ?? []).some((s) => isAccepted(s, ctx.acceptSign))
    if (canSign) usable.push(k)
  }
  const key =
    usable.find((k) => k.public === ctx.akTpm) ?? usable.find((k) => k.server_identifier === 'ak')
  if (key === undefined) {
    rd.problem(`${at}/certification_keys`, 'offers no key the agent is allowed to sign with')
    rd.done()
  }
  return key as Record<string, unknown>
}

/** A log request when `format` is offered (undefined otherwise). */
function logItem(rd: BodyReader, o: Offer, format: string): NewEvidenceItem | undefined {
  const formats = rd.strList(o.caps, 'formats', o.at) ?? []
  const entryCount = rd.uint(o.caps, 'entry_count', o.at, o.type !== 'ima_log')
  const partial = rd.bool(o.caps, 'supports_partial_access', o.at, true)
  const appendable = rd.bool(o.caps, 'appendable', o.at, true)
  const version = rd.str(o.caps, 'evidence_version', o.at, true, 32)
  rd.done()
  if (!formats.includes(format)) return undefined
  return {
    evidence_class: 'log',
    evidence_type: o.type,
    capabilities__evidence_version: version ?? null,
    capabilities__entry_count: entryCount ?? null,
    capabilities__supports_partial_access: partial ?? null,
    capabilities__appendable: appendable ?? null,
    capabilities__formats: JSON.stringify(formats),
    chosen_parameters__format: format,
  }
}
