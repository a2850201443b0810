/**
 * TCG PC Client event types and well-known EFI GUIDs used by the measured-boot library.
 *
 * Event types: TCG PC Client Platform Firmware Profile (PFP) 1.05 §10.4.1 "Event Types"
 * (Table 9). GUIDs: UEFI 2.10 §3.3 (EFI_GLOBAL_VARIABLE), §32.4.1 (EFI_IMAGE_SECURITY_DATABASE_GUID,
 * signature types), shim (SHIM_LOCK_GUID).
 *
 * @module
 */

// ---------------------------------------------------------------------------------------------
// PFP §10.4.1 Event Types
// ---------------------------------------------------------------------------------------------

/** Event type values by name. */
export const EVENT_TYPE = {
  EV_PREBOOT_CERT: 0x0,
  EV_POST_CODE: 0x1,
  EV_UNUSED: 0x2,
  EV_NO_ACTION: 0x3,
  EV_SEPARATOR: 0x4,
  EV_ACTION: 0x5,
  EV_EVENT_TAG: 0x6,
  EV_S_CRTM_CONTENTS: 0x7,
  EV_S_CRTM_VERSION: 0x8,
  EV_CPU_MICROCODE: 0x9,
  EV_PLATFORM_CONFIG_FLAGS: 0xa,
  EV_TABLE_OF_DEVICES: 0xb,
  EV_COMPACT_HASH: 0xc,
  EV_IPL: 0xd,
  EV_IPL_PARTITION_DATA: 0xe,
  EV_NONHOST_CODE: 0xf,
  EV_NONHOST_CONFIG: 0x10,
  EV_NONHOST_INFO: 0x11,
  EV_OMIT_BOOT_DEVICE_EVENTS: 0x12,
  EV_POST_CODE2: 0x13,
  EV_EFI_VARIABLE_DRIVER_CONFIG: 0x80000001,
  EV_EFI_VARIABLE_BOOT: 0x80000002,
  EV_EFI_BOOT_SERVICES_APPLICATION: 0x80000003,
  EV_EFI_BOOT_SERVICES_DRIVER: 0x80000004,
  EV_EFI_RUNTIME_SERVICES_DRIVER: 0x80000005,
  EV_EFI_GPT_EVENT: 0x80000006,
  EV_EFI_ACTION: 0x80000007,
  EV_EFI_PLATFORM_FIRMWARE_BLOB: 0x80000008,
  EV_EFI_HANDOFF_TABLES: 0x80000009,
  EV_EFI_PLATFORM_FIRMWARE_BLOB2: 0x8000000a,
  EV_EFI_HANDOFF_TABLES2: 0x8000000b,
  EV_EFI_VARIABLE_BOOT2: 0x8000000c,
  EV_EFI_GPT_EVENT2: 0x8000000d,
  EV_EFI_HCRTM_EVENT: 0x80000010,
  EV_EFI_VARIABLE_AUTHORITY: 0x800000e0,
  EV_EFI_SPDM_FIRMWARE_BLOB: 0x800000e1,
  EV_EFI_SPDM_FIRMWARE_CONFIG: 0x800000e2,
} as const

/** A known event type name. */
export type EventTypeName = keyof typeof EVENT_TYPE

const NAME_BY_VALUE: ReadonlyMap<number, EventTypeName> = new Map(
  (Object.entries(EVENT_TYPE) as [EventTypeName, number][]).map(([k, v]) => [v, k]),
)

/**
 * The name of an event type; unknown values become `EV_UNKNOWN_0x…` (hex, lowercase), so every
 * event has a stable name a policy can match.
 */
export function eventTypeName(type: number): string {
  return NAME_BY_VALUE.get(type) ?? `EV_UNKNOWN_0x${type.toString(16)}`
}

/** The value of an event type name (`EV_…` or `EV_UNKNOWN_0x…`), or undefined. */
export function eventTypeValue(name: string): number | undefined {
  const known = (EVENT_TYPE as Record<string, number>)[name]
  if (known !== undefined) return known
  const m = /^EV_UNKNOWN_0x([0-9a-f]{1,8})$/.exec(name)
  return m?.[1] === undefined ? undefined : Number.parseInt(m[1], 16)
}

// ---------------------------------------------------------------------------------------------
// Well-known GUIDs (canonical text form, lowercase)
// ---------------------------------------------------------------------------------------------

/** GUIDs of EFI variables and signature types that policies refer to. */
export const EFI_GUID = {
  /** EFI_GLOBAL_VARIABLE: SecureBoot, PK, KEK, BootOrder, Boot#### (UEFI §3.3). */
  GLOBAL_VARIABLE: '8be4df61-93ca-11d2-aa0d-00e098032b8c',
  /** EFI_IMAGE_SECURITY_DATABASE_GUID: db, dbx (UEFI §32.6.1). */
  IMAGE_SECURITY_DATABASE: 'd719b2cb-3d3a-4596-a3bc-dad00e67656f',
  /** SHIM_LOCK_GUID: MokList, MokListX, SbatLevel, Shim (rhboot/shim). */
  SHIM_LOCK: '605dab50-e046-4300-abb6-3dd810dd8b23',
  /** EFI_CERT_X509_GUID (UEFI §32.4.1). */
  CERT_X509: 'a5c059a1-94e4-4aa7-87b5-ab155c2bf072',
  /** EFI_CERT_SHA256_GUID (UEFI §32.4.1). */
  CERT_SHA256: 'c1c41626-504c-4092-aca9-41f936934328',
} as const

/** Linux EFI stub tagged-event ids (EV_EVENT_TAG in PCR 9; `drivers/firmware/efi/libstub`). */
export const LINUX_EVENT_TAG = {
  /** The initrd loaded through LINUX_EFI_INITRD_MEDIA_GUID ("Linux initrd"). */
  INITRD: 0x8f3b22ec,
  /** The kernel command line (LoadOptions, UTF-16LE; "LOADED_IMAGE::LoadOptions"). */
  LOAD_OPTIONS: 0x8f3b22ed,
} as const
