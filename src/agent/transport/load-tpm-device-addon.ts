/**
 * Loads the `tpm_device` N-API addon (src/agent/native). The `require` below names the `.node`
 * file LITERALLY so `bun build --compile` embeds it in the agent binary (bun-and-tools §2.2); at
 * run time Bun writes it to `$TMPDIR` and dlopens it, so `TMPDIR` must allow exec. Returns
 * undefined when the addon is not built or cannot load — the caller then falls back to node:fs.
 *
 * @module
 */

/** The addon's functions (see native/tpm_device.c). */
export interface TpmDeviceAddon {
  /** open(2) with O_RDWR|O_CLOEXEC; throws with code ENOENT/EACCES/EIO. */
  open(path: string): number
  /** One write, poll() with a timeout, one read of up to 4096 bytes, on the thread pool. */
  transmit(fd: number, command: Uint8Array, timeoutMs: number): Promise<Uint8Array>
  /** close(2). */
  close(fd: number): void
}

/** Why the addon did not load, for the startup log (undefined when it loaded). */
export let addonLoadError: string | undefined

/** The addon, or undefined if it cannot be loaded here. */
export function loadTpmDeviceAddon(): TpmDeviceAddon | undefined {
  if (process.env.KEYLIME_AGENT_NO_ADDON === '1') {
    addonLoadError = 'disabled by KEYLIME_AGENT_NO_ADDON=1'
    return undefined
  }
  try {
    return require('../native/build/Release/tpm_device.node') as TpmDeviceAddon
  } catch (err) {
    addonLoadError = err instanceof Error ? err.message : String(err)
    return undefined
  }
}
