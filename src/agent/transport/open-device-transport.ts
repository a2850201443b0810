/**
 * TPM character devices (`/dev/tpmrm0`, `/dev/tpm0`; wire-formats §6.6): one write of the whole
 * command, one read of the whole response. Through the `tpm_device` addon when it loads
 * (poll() with a timeout, I/O off the event loop), else through a node:fs FileHandle (no
 * timeout: a hung TPM blocks that read). Keep one open device for the agent's life: the kernel
 * resource manager flushes our transient objects and sessions when it is closed.
 *
 * @module
 */

import { open } from 'node:fs/promises'
import { AgentError } from '../errors.ts'
import { addonLoadError, loadTpmDeviceAddon } from './load-tpm-device-addon.ts'
import type { TpmTransport } from './tpm-transport.ts'

/** Largest TPM response (TPM_BUFFER_MAX on Linux). */
const MAX_RESPONSE = 4096

/** Options of {@link openDeviceTransport}. */
export interface DeviceTransportOptions {
  /** Device path (default `/dev/tpmrm0`). */
  path?: string
  /** Per-command timeout with the addon (default 120 s). */
  timeoutMs?: number
  /** `addon` only, `fs` only, or `auto` (addon, else fs; default). */
  mode?: 'auto' | 'addon' | 'fs'
}

function transportError(path: string, err: unknown): AgentError {
  const msg = err instanceof Error ? err.message : String(err)
  return new AgentError('ERR_AGENT_TRANSPORT', `TPM device ${path}: ${msg}`, { cause: err })
}

/**
 * Opens a TPM device.
 *
 * @throws {AgentError} `ERR_AGENT_TRANSPORT` if it cannot be opened, or if `mode: 'addon'` and
 *   the addon does not load.
 */
export async function openDeviceTransport(
  opts: DeviceTransportOptions = {},
): Promise<TpmTransport> {
  const path = opts.path ?? '/dev/tpmrm0'
  const timeoutMs = opts.timeoutMs ?? 120_000
  const mode = opts.mode ?? 'auto'
  const addon = mode === 'fs' ? undefined : loadTpmDeviceAddon()
  if (addon === undefined && mode === 'addon') {
    throw new AgentError('ERR_AGENT_TRANSPORT', `tpm_device addon: ${addonLoadError}`)
  }
  if (addon !== undefined) {
    let fd: number
    try {
      fd = addon.open(path)
    } catch (err) {
      throw transportError(path, err)
    }
    let closed = false
    return {
      description: `device:${path} (addon)`,
      async transmit(command: Uint8Array): Promise<Uint8Array> {
        if (closed) throw new AgentError('ERR_AGENT_TRANSPORT', `TPM device ${path} is closed`)
        try {
          return new Uint8Array(await addon.transmit(fd, command, timeoutMs))
        } catch (err) {
          throw transportError(path, err)
        }
      },
      async close(): Promise<void> {
        if (closed) return
        closed = true
        addon.close(fd)
      },
    }
  }
  let handle: Awaited<ReturnType<typeof open>>
  try {
    handle = await open(path, 'r+')
  } catch (err) {
    throw transportError(path, err)
  }
  const buf = Buffer.alloc(MAX_RESPONSE)
  return {
    description: `device:${path} (fs${mode === 'auto' ? `; addon: ${addonLoadError}` : ''})`,
    async transmit(command: Uint8Array): Promise<Uint8Array> {
      try {
        const w = await handle.write(command, 0, command.byteLength, null)
        if (w.bytesWritten !== command.byteLength) throw new Error('short write')
        const r = await handle.read(buf, 0, MAX_RESPONSE, null)
        const out = new Uint8Array(buf.subarray(0, r.bytesRead))
        buf.fill(0, 0, r.bytesRead)
        return out
      } catch (err) {
        throw transportError(path, err)
      }
    },
    async close(): Promise<void> {
      await handle.close()
    },
  }
}
