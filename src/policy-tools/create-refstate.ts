/**
 * Builds an `example` reference state from a parsed event log — what upstream's
 * `keylime/policy/create_mb_policy.py` (and `scripts/create_mb_refstate`) derive from tpm2_eventlog's
 * output: S-CRTM and firmware blob digests, PK/KEK/db/dbx/vendor_db, MokList digests, and one kernel
 * entry (shim, grub, kernel Authenticode digests; initrd and vmlinuz digests; the escaped kernel
 * command line).
 *
 * Extension for firmware that starts the kernel's EFI stub directly (one boot application, as the
 * QEMU/OVMF `-kernel` path does): the kernel entry holds `kernel_authcode_sha256`, the initrd from the
 * stub's "Linux initrd" tagged event, and `load_options_sha256` for its LoadOptions event. For a UKI
 * (systemd-stub's PCR 11 events), `systemd_boot_authcode_sha256`, `uki_authcode_sha256` and
 * `uki_sections_sha256` (see docs/measured-boot-policies.md).
 *
 * @module
 */

import { MbError } from '../mb/errors.ts'
import type { ExampleRefstate, RefDigest, RefKernel, RefSignature } from '../mb/example-policy.ts'
import { eventView, type EventView } from '../mb/event-view.ts'
import { LINUX_EVENT_TAG } from '../mb/event-types.ts'
import type { EventLog } from '../mb/parse-event-log.ts'

/** Options of {@link createRefstate}. */
export interface CreateRefstateOptions {
  /** `-i/--without-secureboot`: allow a log with Secure Boot disabled. */
  withoutSecureboot?: boolean
  /** Receives warnings (e.g. -i given for a Secure Boot log). */
  warn?: (msg: string) => void
}

/** Python's `re.escape` (3.7+): escapes `()[]{}?*+-|^$\.&~# \t\n\r\v\f`. */
export function pythonReEscape(s: string): string {
  return s.replace(/[()[\]{}?*+\-|^$\\.&~# \t\n\r\v\f]/g, (c) => `\\${c}`)
}

const UEFI_APP =
  /^FvVol\(\w{8}-\w{4}-\w{4}-\w{4}-\w{12}\)\/FvFile\(\w{8}-\w{4}-\w{4}-\w{4}-\w{12}\)/i

function sha256(v: EventView): RefDigest {
  const d = v.digests.sha256
  return d === undefined ? {} : { sha256: `0x${d}` }
}
function sha256Hex(v: EventView | undefined, what: string): string {
  const d = v?.digests.sha256
  if (d === undefined)
    throw new MbError('ERR_MB_CREATE', `the log has no sha256 digest for ${what}`)
  return `0x${d}`
}

/**
 * The boot applications and sections of a UKI boot (systemd-stub measured sections into PCR 11):
 * [shim,] [systemd-boot,] UKI [, the kernel the stub started, from memory: `VenMedia(…)`].
 */
function ukiKernel(kernel: RefKernel, apps: EventView[], sections: EventView[]): void {
  const rest = [...apps]
  if ((rest.at(-1)?.fields.DevicePath ?? '').startsWith('VenMedia('))
    kernel.kernel_authcode_sha256 = sha256Hex(rest.pop(), 'the kernel')
  kernel.uki_authcode_sha256 = sha256Hex(rest.pop(), 'the UKI')
  if (rest.length === 2) kernel.shim_authcode_sha256 = sha256Hex(rest.shift(), 'shim')
  if (rest.length === 1) kernel.systemd_boot_authcode_sha256 = sha256Hex(rest[0], 'systemd-boot')
  else if (rest.length > 1)
    throw new MbError('ERR_MB_CREATE', `${apps.length} UEFI applications before a UKI's kernel`)
  if (sections.length % 2 !== 0)
    throw new MbError('ERR_MB_CREATE', 'PCR 11 has an odd number of UKI section events')
  const out: Record<string, string> = {}
  for (let i = 0; i < sections.length; i += 2)
    out[sections[i + 1]?.fields.String ?? ''] = sha256Hex(sections[i + 1], 'a UKI section')
  kernel.uki_sections_sha256 = out
}

/**
 * Derives an `example` refstate from `log`.
 *
 * @throws {MbError} `ERR_MB_CREATE` when Secure Boot is off and `withoutSecureboot` is not set, or
 *   when the boot applications do not have the expected shape.
 */
export function createRefstate(log: EventLog, opts: CreateRefstateOptions = {}): ExampleRefstate {
  const views = log.events.slice(1).map((ev) => ({ ev, v: eventView(ev) }))
  let sb: boolean | null = null
  for (const { v } of views) {
    if (
      sb === null &&
      v.type === 'EV_EFI_VARIABLE_DRIVER_CONFIG' &&
      v.fields.UnicodeName === 'SecureBoot'
    ) {
      sb = v.fields.Enabled === 'Yes'
    }
  }
  if (sb === null) opts.warn?.('SecureBoot state could not be determined; assuming disabled')
  const hasSb = sb === true
  if (!hasSb && opts.withoutSecureboot !== true) {
    throw new MbError(
      'ERR_MB_CREATE',
      'the event log has SecureBoot disabled, but -i/--without-secureboot was not set',
    )
  }
  if (hasSb && opts.withoutSecureboot === true) {
    opts.warn?.(
      '-i/--without-secureboot was set, but the event log has SecureBoot enabled; ignoring the flag',
    )
  }
  const scrtm = views.find(({ v }) => v.type === 'EV_S_CRTM_VERSION')
  const firmware = views.filter(
    ({ v }) =>
      v.type === 'EV_EFI_PLATFORM_FIRMWARE_BLOB' || v.type === 'EV_EFI_PLATFORM_FIRMWARE_BLOB2',
  )
  const keys: Record<'pk' | 'kek' | 'db' | 'dbx', RefSignature[]> = {
    pk: [],
    kek: [],
    db: [],
    dbx: [],
  }
  const vendorDb: RefSignature[] = []
  const mokdig: RefDigest[] = []
  const mokxdig: RefDigest[] = []
  for (const { ev, v } of views) {
    const d = ev.decoded
    if (v.type === 'EV_EFI_VARIABLE_DRIVER_CONFIG' && d.kind === 'variable') {
      const name = d.unicodeName.toLowerCase()
      if (name === 'pk' || name === 'kek' || name === 'db' || name === 'dbx') {
        keys[name] = (d.signatureLists ?? []).flatMap((l) =>
          l.Keys.map((k) => ({
            SignatureOwner: k.SignatureOwner,
            SignatureData: `0x${k.SignatureData}`,
          })),
        )
      }
    } else if (
      v.type === 'EV_EFI_VARIABLE_AUTHORITY' &&
      d.kind === 'variable' &&
      d.unicodeName.toLowerCase() === 'vendor_db'
    ) {
      if (d.signature !== undefined)
        vendorDb.push({
          SignatureOwner: d.signature.SignatureOwner,
          SignatureData: `0x${d.signature.SignatureData}`,
        })
    } else if (v.type === 'EV_IPL') {
      if (v.fields.String === 'MokList') mokdig.push(sha256(v))
      else if (v.fields.String === 'MokListX') mokxdig.push(sha256(v))
    }
  }
  const apps = views.filter(
    ({ v }) =>
      v.type === 'EV_EFI_BOOT_SERVICES_APPLICATION' && !UEFI_APP.test(v.fields.DevicePath ?? ''),
  )
  const kernel: RefKernel = {}
  const ukiEvents = views.filter(({ v }) => v.pcr === 11 && v.type === 'EV_IPL')
  if (ukiEvents.length > 0)
    ukiKernel(
      kernel,
      apps.map(({ v }) => v),
      ukiEvents.map(({ v }) => v),
    )
  else if (apps.length === 1) {
    kernel.kernel_authcode_sha256 = sha256Hex(apps[0]?.v, 'the kernel')
  } else if (hasSb && (apps.length === 3 || apps.length === 4)) {
    kernel.kernel_authcode_sha256 = sha256Hex(apps[2]?.v, 'the kernel')
  } else if (!hasSb && apps.length !== 2) {
    throw new MbError(
      'ERR_MB_CREATE',
      `expected 2 UEFI applications (shim, grub) or 1 (EFI stub kernel); got ${apps.length}`,
    )
  } else if (hasSb) {
    throw new MbError(
      'ERR_MB_CREATE',
      `expected 3 UEFI applications (shim, grub, kernel) or 1 (EFI stub kernel); got ${apps.length}`,
    )
  }
  if (apps.length >= 2 && ukiEvents.length === 0) {
    kernel.shim_authcode_sha256 = sha256Hex(apps[0]?.v, 'shim')
    kernel.grub_authcode_sha256 = sha256Hex(apps[1]?.v, 'grub')
  }
  const pcr9 = views.filter(({ v }) => v.pcr === 9)
  const initrd =
    pcr9.find(({ v }) => v.type === 'EV_IPL' && /initrd|initramfs/.test(v.fields.String ?? '')) ??
    pcr9.find(
      ({ ev }) => ev.decoded.kind === 'tagged' && ev.decoded.tags[0]?.id === LINUX_EVENT_TAG.INITRD,
    )
  if (initrd !== undefined) kernel.initrd_plain_sha256 = sha256Hex(initrd.v, 'the initrd')
  if (!hasSb) {
    const vml = pcr9.find(
      ({ v }) => v.type === 'EV_IPL' && (v.fields.String ?? '').includes('vmlinuz'),
    )
    if (vml !== undefined) kernel.vmlinuz_plain_sha256 = sha256Hex(vml.v, 'vmlinuz')
  }
  const lo = pcr9.find(
    ({ ev }) =>
      ev.decoded.kind === 'tagged' && ev.decoded.tags[0]?.id === LINUX_EVENT_TAG.LOAD_OPTIONS,
  )
  if (lo !== undefined) kernel.load_options_sha256 = sha256Hex(lo.v, 'the EFI stub load options')
  const cmd = views.find(
    ({ v }) =>
      v.pcr === 8 && v.type === 'EV_IPL' && (v.fields.String ?? '').includes('kernel_cmdline'),
  )
  if (cmd !== undefined)
    kernel.kernel_cmdline = pythonReEscape(
      (cmd.v.fields.String ?? '').slice('kernel_cmdline: '.length),
    )
  return {
    has_secureboot: hasSb,
    scrtm_and_bios: [
      {
        scrtm: scrtm === undefined ? {} : sha256(scrtm.v),
        platform_firmware: firmware.map(({ v }) => sha256(v)),
      },
    ],
    ...keys,
    vendor_db: vendorDb,
    mokdig,
    mokxdig,
    kernels: [kernel],
  }
}
