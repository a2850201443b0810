/**
 * Text form of EFI device paths (UEFI 2.10 §10.3 Device Path Nodes, §10.6.1 text representation),
 * basic: the nodes seen in boot logs (PciRoot, Pci, HD, file path, firmware volume/file, offsets,
 * NVMe, SATA, SCSI, USB, MAC, URI); other nodes print as `Path(type,subtype,hex)`. Decoding never
 * throws: a malformed node ends the text with `…(malformed)` so an operator still sees the prefix.
 *
 * @module
 */

import { decodeUtf16z, formatGuid, toHex } from './efi-text.ts'

const MAX_NODES = 256

function u16(b: Uint8Array, o: number): number {
  return (b[o] as number) | ((b[o + 1] as number) << 8)
}
function u32(b: Uint8Array, o: number): number {
  return (u16(b, o) | (u16(b, o + 2) << 16)) >>> 0
}
function u64hex(b: Uint8Array, o: number): string {
  const v = (BigInt(u32(b, o + 4)) << 32n) | BigInt(u32(b, o))
  return `0x${v.toString(16)}`
}

function node(type: number, sub: number, d: Uint8Array): string {
  const n = d.length
  const hx = (x: number): string => `0x${x.toString(16)}`
  if (type === 1 && sub === 1 && n >= 2) return `Pci(${hx(d[1] as number)},${hx(d[0] as number)})`
  if (type === 2 && sub === 1 && n >= 8) {
    const hid = u32(d, 0)
    const uid = u32(d, 4)
    if (hid === 0x0a0341d0) return `PciRoot(${hx(uid)})`
    if (hid === 0x0a0841d0) return `PcieRoot(${hx(uid)})`
    return `Acpi(${hx(hid)},${hx(uid)})`
  }
  if (type === 3) {
    if (sub === 2 && n >= 4) return `Scsi(${hx(u16(d, 0))},${hx(u16(d, 2))})`
    if (sub === 5 && n >= 2) return `USB(${hx(d[0] as number)},${hx(d[1] as number)})`
    if (sub === 11 && n >= 32) return `MAC(${toHex(d.subarray(0, 6))},${hx(d[32] ?? 0)})`
    if (sub === 18 && n >= 6) return `Sata(${hx(u16(d, 0))},${hx(u16(d, 2))},${hx(u16(d, 4))})`
    if (sub === 23 && n >= 12) {
      const eui = Array.from(d.subarray(4, 12), (x) =>
        x.toString(16).padStart(2, '0').toUpperCase(),
      )
      return `NVMe(${hx(u32(d, 0))},${eui.join('-')})`
    }
    if (sub === 24) return `Uri(${new TextDecoder().decode(d)})`
  }
  if (type === 4) {
    if (sub === 1 && n >= 38) {
      const fmt = d[36]
      const sigType = d[37]
      const sig = sigType === 2 ? formatGuid(d.subarray(20, 36)) : hx(u32(d, 20))
      const part = fmt === 2 ? 'GPT' : fmt === 1 ? 'MBR' : hx(fmt ?? 0)
      return `HD(${u32(d, 0)},${part},${sig},${u64hex(d, 4)},${u64hex(d, 12)})`
    }
    if (sub === 2 && n >= 8) return `CDROM(${hx(u32(d, 0))})`
    if (sub === 3 && n >= 16) return `VenMedia(${formatGuid(d.subarray(0, 16))})`
    if (sub === 4) return decodeUtf16z(d)
    if (sub === 6 && n >= 16) return `FvFile(${formatGuid(d.subarray(0, 16))})`
    if (sub === 7 && n >= 16) return `FvVol(${formatGuid(d.subarray(0, 16))})`
    if (sub === 8 && n >= 20) return `Offset(${u64hex(d, 4)},${u64hex(d, 12)})`
  }
  return `Path(${type},${sub},${toHex(d.subarray(0, 64))}${n > 64 ? '…' : ''})`
}

/**
 * Formats an EFI_DEVICE_PATH_PROTOCOL byte string as text, e.g.
 * `PciRoot(0x0)/Pci(0x1,0x1)/HD(1,GPT,…,0x800,0x100000)/\EFI\debian\shimx64.efi`. Multi-instance
 * paths (end-instance nodes) are joined with `,`.
 */
export function formatDevicePath(b: Uint8Array): string {
  const parts: string[] = []
  let o = 0
  let text = ''
  for (let count = 0; o < b.length; count++) {
    if (count >= MAX_NODES || b.length - o < 4) return `${text}${parts.join('/')}/…(malformed)`
    const type = b[o] as number
    const sub = b[o + 1] as number
    const len = u16(b, o + 2)
    if (len < 4 || len > b.length - o) return `${text}${parts.join('/')}/…(malformed)`
    if (type === 0x7f) {
      if (sub === 0xff) break
      text += `${parts.join('/')},`
      parts.length = 0
    } else {
      parts.push(node(type, sub, b.subarray(o + 4, o + len)))
    }
    o += len
  }
  return text + parts.join('/')
}
