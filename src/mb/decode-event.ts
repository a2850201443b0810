/**
 * Decoding of TCG PC Client event data (the bytes after EventSize) into plain, JSON-friendly values,
 * per event type (TCG PFP 1.05 §10.4 Event Descriptions; UEFI 2.10 for the EFI structures).
 *
 * Decoding is best effort and total: structural problems of the log itself are the parser's job
 * ({@link parseEventLog}); here a malformed body yields `{kind: 'raw', decodeError}` so one odd event
 * does not hide the rest of the log, and any policy that needs its fields fails closed. Every length
 * field is bounds-checked before use; 64-bit values become `0x…` strings.
 *
 * @module
 */

import { ByteReader } from '../tpm/byte-reader.ts'
import { isTpmError } from '../tpm/errors.ts'
import { formatDevicePath } from './device-path.ts'
import { decodeAsciiz, decodeUtf16z, formatGuid, toHex } from './efi-text.ts'
import { isMbError } from './errors.ts'
import { EFI_GUID, EVENT_TYPE, LINUX_EVENT_TAG } from './event-types.ts'
import { type EfiSignature, type EfiSignatureList, parseSignatureLists } from './signature-list.ts'

/** TCG_EfiSpecIDEvent algorithm entry. */
export interface SpecIdAlgorithm {
  /** TPM_ALG_ID. */
  algId: number
  /** Name (`sha1`, `sha256`, …, or `alg_0x…`). */
  alg: string
  /** Digest size in bytes. */
  digestSize: number
}

/** EFI_LOAD_OPTION (UEFI 2.10 §3.1.3), basic. */
export interface LoadOption {
  /** Attributes bit field. */
  attributes: number
  /** Description (UTF-16). */
  description: string
  /** Device path text. */
  devicePath: string
  /** Optional data, hex. */
  optionalData: string
}

/** A decoded event body; `kind` tells which fields are present. */
export type DecodedEvent =
  | {
      kind: 'spec-id'
      signature: string
      platformClass: number
      specVersion: string
      uintnSize: number
      algorithms: SpecIdAlgorithm[]
      vendorInfo: string
    }
  | { kind: 'startup-locality'; locality: number }
  | { kind: 'no-action'; signature: string }
  | { kind: 'string'; string: string }
  | { kind: 'firmware-blob'; base: string; length: string; description?: string }
  | {
      kind: 'variable'
      variableName: string
      unicodeName: string
      data: string
      /** SecureBoot variable: `Yes`/`No` as tpm2-tools prints it. */
      enabled?: 'Yes' | 'No'
      /** PK/KEK/db/dbx/MokList…: the signature lists. */
      signatureLists?: EfiSignatureList[]
      /** EV_EFI_VARIABLE_AUTHORITY: the signature that authorised the image. */
      signature?: EfiSignature
      /** BootOrder. */
      bootOrder?: number[]
      /** Boot####. */
      loadOption?: LoadOption
    }
  | {
      kind: 'image-load'
      location: string
      length: string
      linkTimeAddress: string
      devicePath: string
    }
  | {
      kind: 'gpt'
      diskGuid: string
      partitions: Array<{
        typeGuid: string
        uniqueGuid: string
        firstLba: string
        lastLba: string
        attributes: string
        name: string
      }>
    }
  | { kind: 'separator'; value: string; error: boolean }
  | { kind: 'handoff-tables'; description?: string; tables: Array<{ guid: string; table: string }> }
  | { kind: 'tagged'; tags: Array<{ id: number; data: string; text?: string }> }
  | { kind: 'raw'; decodeError?: string }

const HASH_NAMES: Readonly<Record<number, string>> = {
  0x0004: 'sha1',
  0x000b: 'sha256',
  0x000c: 'sha384',
  0x000d: 'sha512',
  0x0012: 'sm3_256',
}

/** The name of a TPM hash algorithm id as tpm2-tools prints it (`alg_0x…` when unknown). */
export function hashName(algId: number): string {
  return HASH_NAMES[algId] ?? `alg_0x${algId.toString(16)}`
}

const le = { littleEndian: true } as const

function hex64(v: bigint): string {
  return `0x${v.toString(16)}`
}

/** Reads a u64 length and checks it against what is left (scaled by `unit` bytes per element). */
function len64(r: ByteReader, unit: number): number {
  const v = r.u64()
  if (v > BigInt(Math.floor(r.remaining / unit))) {
    r.need(Number.MAX_SAFE_INTEGER) // throws ERR_TPM_TRUNCATED with the offset
  }
  return Number(v)
}

const SIG_LIST_VARS = new Set([
  'PK',
  'KEK',
  'db',
  'dbx',
  'vendor_db',
  'MokList',
  'MokListX',
  'dbr',
  'dbt',
])

function decodeVariable(type: number, d: Uint8Array): DecodedEvent {
  const r = new ByteReader(d, le)
  const variableName = formatGuid(r.bytes(16))
  const nameLen = len64(r, 2)
  const dataLen = len64(r, 1)
  const unicodeName = decodeUtf16z(r.bytes(nameLen * 2))
  const data = r.bytes(dataLen)
  const out: Extract<DecodedEvent, { kind: 'variable' }> = {
    kind: 'variable',
    variableName,
    unicodeName,
    data: toHex(data),
  }
  if (
    type === EVENT_TYPE.EV_EFI_VARIABLE_DRIVER_CONFIG ||
    type === EVENT_TYPE.EV_EFI_VARIABLE_AUTHORITY
  ) {
    if (unicodeName === 'SecureBoot' || unicodeName === 'MokListTrusted') {
      out.enabled = data.length > 0 && data[0] === 1 ? 'Yes' : 'No'
    } else if (type === EVENT_TYPE.EV_EFI_VARIABLE_AUTHORITY) {
      if (SIG_LIST_VARS.has(unicodeName) && data.length >= 16) {
        out.signature = {
          SignatureOwner: formatGuid(data.subarray(0, 16)),
          SignatureData: toHex(data.subarray(16)),
        }
      }
    } else if (SIG_LIST_VARS.has(unicodeName)) {
      out.signatureLists = parseSignatureLists(data)
    }
  } else if (unicodeName === 'BootOrder' && variableName === EFI_GUID.GLOBAL_VARIABLE) {
    const order: number[] = []
    for (let i = 0; i + 1 < data.length; i += 2)
      order.push((data[i] as number) | ((data[i + 1] as number) << 8))
    out.bootOrder = order
  } else if (/^Boot[0-9A-Fa-f]{4}$/.test(unicodeName) && data.length >= 6) {
    out.loadOption = decodeLoadOption(data)
  }
  return out
}

function decodeLoadOption(data: Uint8Array): LoadOption | undefined {
  const r = new ByteReader(data, le)
  const attributes = r.u32()
  const fpLen = r.u16()
  let end = r.offset
  while (end + 1 < data.length && !(data[end] === 0 && data[end + 1] === 0)) end += 2
  if (end + 1 >= data.length) return undefined
  const description = decodeUtf16z(r.bytes(end + 2 - r.offset))
  if (fpLen > r.remaining) return undefined
  const devicePath = formatDevicePath(r.bytes(fpLen))
  return { attributes, description, devicePath, optionalData: toHex(r.rest()) }
}

function decodeImageLoad(d: Uint8Array): DecodedEvent {
  const r = new ByteReader(d, le)
  const location = hex64(r.u64())
  const length = hex64(r.u64())
  const linkTimeAddress = hex64(r.u64())
  const dpLen = len64(r, 1)
  return {
    kind: 'image-load',
    location,
    length,
    linkTimeAddress,
    devicePath: formatDevicePath(r.bytes(dpLen)),
  }
}

function decodeGpt(d: Uint8Array): DecodedEvent {
  const r = new ByteReader(d, le)
  const hdr = r.bytes(92) // EFI_PARTITION_TABLE_HEADER
  const diskGuid = formatGuid(hdr.subarray(56, 72))
  const entrySize = new DataView(hdr.buffer, hdr.byteOffset).getUint32(84, true)
  const count = r.u64()
  if (entrySize < 128 && count > 0n) r.need(Number.MAX_SAFE_INTEGER)
  if (count > BigInt(Math.floor(r.remaining / Math.max(entrySize, 128))))
    r.need(Number.MAX_SAFE_INTEGER)
  const partitions: Extract<DecodedEvent, { kind: 'gpt' }>['partitions'] = []
  for (let i = 0; i < Number(count); i++) {
    const e = new ByteReader(r.bytes(entrySize), le)
    partitions.push({
      typeGuid: formatGuid(e.bytes(16)),
      uniqueGuid: formatGuid(e.bytes(16)),
      firstLba: hex64(e.u64()),
      lastLba: hex64(e.u64()),
      attributes: hex64(e.u64()),
      name: decodeUtf16z(e.bytes(72)),
    })
  }
  return { kind: 'gpt', diskGuid, partitions }
}

function decodeHandoff(d: Uint8Array, withDescription: boolean): DecodedEvent {
  const r = new ByteReader(d, le)
  let description: string | undefined
  if (withDescription) description = decodeAsciiz(r.bytes(r.u8()))
  const n = len64(r, 24)
  const tables: Array<{ guid: string; table: string }> = []
  for (let i = 0; i < n; i++) tables.push({ guid: formatGuid(r.bytes(16)), table: hex64(r.u64()) })
  return description === undefined
    ? { kind: 'handoff-tables', tables }
    : { kind: 'handoff-tables', description, tables }
}

function decodeTagged(d: Uint8Array): DecodedEvent {
  const r = new ByteReader(d, le)
  const tags: Array<{ id: number; data: string; text?: string }> = []
  while (r.remaining > 0) {
    const id = r.u32()
    const body = r.bytes(r.u32())
    const tag: { id: number; data: string; text?: string } = { id, data: toHex(body) }
    if (id === LINUX_EVENT_TAG.INITRD || id === LINUX_EVENT_TAG.LOAD_OPTIONS)
      tag.text = decodeAsciiz(body)
    tags.push(tag)
  }
  return { kind: 'tagged', tags }
}

function decodeNoAction(d: Uint8Array): DecodedEvent {
  const sig = decodeAsciiz(d.subarray(0, 16))
  if (sig === 'StartupLocality' && d.length >= 17)
    return { kind: 'startup-locality', locality: d[16] as number }
  return { kind: 'no-action', signature: sig }
}

function decodeBody(type: number, d: Uint8Array): DecodedEvent {
  switch (type) {
    case EVENT_TYPE.EV_NO_ACTION:
      return decodeNoAction(d)
    case EVENT_TYPE.EV_S_CRTM_VERSION:
      return { kind: 'string', string: decodeUtf16z(d) }
    case EVENT_TYPE.EV_IPL:
      // systemd (sd-boot, sd-stub: PCRs 11-13) describes its EV_IPL events in UTF-16LE
      if (d.length >= 2 && d.length % 2 === 0 && d[0] !== 0 && d[1] === 0)
        return { kind: 'string', string: decodeUtf16z(d) }
      return { kind: 'string', string: decodeAsciiz(d) }
    case EVENT_TYPE.EV_EFI_ACTION:
    case EVENT_TYPE.EV_ACTION:
    case EVENT_TYPE.EV_S_CRTM_CONTENTS:
    case EVENT_TYPE.EV_OMIT_BOOT_DEVICE_EVENTS:
      return { kind: 'string', string: decodeAsciiz(d) }
    case EVENT_TYPE.EV_POST_CODE:
    case EVENT_TYPE.EV_EFI_PLATFORM_FIRMWARE_BLOB: {
      if (d.length !== 16) return { kind: 'string', string: decodeAsciiz(d) }
      const r = new ByteReader(d, le)
      return { kind: 'firmware-blob', base: hex64(r.u64()), length: hex64(r.u64()) }
    }
    case EVENT_TYPE.EV_EFI_PLATFORM_FIRMWARE_BLOB2: {
      const r = new ByteReader(d, le)
      const description = decodeAsciiz(r.bytes(r.u8()))
      return { kind: 'firmware-blob', description, base: hex64(r.u64()), length: hex64(r.u64()) }
    }
    case EVENT_TYPE.EV_EFI_VARIABLE_DRIVER_CONFIG:
    case EVENT_TYPE.EV_EFI_VARIABLE_BOOT:
    case EVENT_TYPE.EV_EFI_VARIABLE_BOOT2:
    case EVENT_TYPE.EV_EFI_VARIABLE_AUTHORITY:
      return decodeVariable(type, d)
    case EVENT_TYPE.EV_EFI_BOOT_SERVICES_APPLICATION:
    case EVENT_TYPE.EV_EFI_BOOT_SERVICES_DRIVER:
    case EVENT_TYPE.EV_EFI_RUNTIME_SERVICES_DRIVER:
      return decodeImageLoad(d)
    case EVENT_TYPE.EV_EFI_GPT_EVENT:
    case EVENT_TYPE.EV_EFI_GPT_EVENT2:
      return decodeGpt(d)
    case EVENT_TYPE.EV_SEPARATOR:
      return { kind: 'separator', value: toHex(d), error: toHex(d) === 'ffffffff' }
    case EVENT_TYPE.EV_EFI_HANDOFF_TABLES:
      return decodeHandoff(d, false)
    case EVENT_TYPE.EV_EFI_HANDOFF_TABLES2:
      return decodeHandoff(d, true)
    case EVENT_TYPE.EV_EVENT_TAG:
      return decodeTagged(d)
    default:
      return { kind: 'raw' }
  }
}

/**
 * Decodes the data of one event of type `type`. Never throws for malformed bodies: those give
 * `{kind: 'raw', decodeError}` with the typed error's code.
 */
export function decodeEvent(type: number, data: Uint8Array): DecodedEvent {
  try {
    return decodeBody(type, data)
  } catch (e) {
    if (isTpmError(e) || isMbError(e)) return { kind: 'raw', decodeError: e.code }
    throw e
  }
}
