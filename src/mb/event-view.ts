/**
 * A flat, string-valued view of an event for policies: PCR, type name, digests as lowercase hex by
 * algorithm, and the decoded fields under tpm2-tools / upstream Keylime names (`String`,
 * `UnicodeName`, `VariableName`, `Enabled`, `DevicePath`, `Event`, `Description`, `Locality`).
 *
 * @module
 */

import { toHex } from './efi-text.ts'
import type { UefiEvent } from './parse-event-log.ts'

/** What policies see of one event. */
export interface EventView {
  /** Event number. */
  index: number
  /** PCRIndex. */
  pcr: number
  /** EventType name. */
  type: string
  /** Digests by algorithm name, lowercase hex. */
  digests: Record<string, string>
  /** Decoded fields (only those that apply). */
  fields: Record<string, string>
}

/** Builds the {@link EventView} of an event. */
export function eventView(ev: UefiEvent): EventView {
  const digests: Record<string, string> = {}
  for (const d of ev.digests) digests[d.alg] = toHex(d.digest)
  const f: Record<string, string> = {}
  const d = ev.decoded
  switch (d.kind) {
    case 'string':
      f.String = d.string
      break
    case 'variable':
      f.VariableName = d.variableName
      f.UnicodeName = d.unicodeName
      if (d.enabled !== undefined) f.Enabled = d.enabled
      if (d.loadOption !== undefined) {
        f.Description = d.loadOption.description
        f.DevicePath = d.loadOption.devicePath
      }
      break
    case 'image-load':
      f.DevicePath = d.devicePath
      break
    case 'separator':
      f.Event = d.value
      break
    case 'firmware-blob':
      if (d.description !== undefined) f.Description = d.description
      break
    case 'handoff-tables':
      if (d.description !== undefined) f.Description = d.description
      break
    case 'tagged':
      f.String = d.tags.map((t) => t.text ?? '').join('\n')
      break
    case 'startup-locality':
      f.Locality = String(d.locality)
      f.String = 'StartupLocality'
      break
    case 'no-action':
      f.String = d.signature
      break
    case 'spec-id':
      f.String = d.signature
      break
    case 'gpt':
      f.DiskGuid = d.diskGuid
      break
    case 'raw':
      if (d.decodeError !== undefined) f.DecodeError = d.decodeError
      break
  }
  return { index: ev.index, pcr: ev.pcr, type: ev.typeName, digests, fields: f }
}

/** A short description of an event for failure reasons: `event 12 (PCR 4 EV_IPL)`. */
export function describeEvent(v: Pick<EventView, 'index' | 'pcr' | 'type'>): string {
  return `event ${v.index} (PCR ${v.pcr} ${v.type})`
}
