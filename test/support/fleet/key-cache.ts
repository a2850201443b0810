/**
 * A file cache of simulator key pairs, so a 10,000-agent fleet does not regenerate thousands of
 * RSA-2048 keys (~50 ms each) on every run. Keys are stored by name as PKCS#8 DER (base64) in
 * one JSON file written with mode 0600; they are throw-away simulator keys, but private keys all
 * the same, so they are never logged.
 *
 * @module
 */

import { createPrivateKey, type KeyObject } from 'node:crypto'
import { chmod, readFile, rename, writeFile } from 'node:fs/promises'
import { FleetError } from './errors.ts'
import { generateSoftTpmKey, type SoftKeyType } from './soft-tpm.ts'

interface CacheFile {
  version: 1
  keys: Record<string, { kind: SoftKeyType; pkcs8: string }>
}

/**
 * Named keys, loaded from and saved to an optional file.
 *
 * @example
 * ```ts
 * const cache = await KeyCache.open('/tmp/fleet-keys.json')
 * const ek = cache.get('ek-rsa-shared', 'rsa')
 * await cache.save()
 * ```
 */
export class KeyCache {
  /** The cache file, or undefined for an in-memory cache. */
  readonly path: string | undefined
  readonly #stored: CacheFile['keys']
  readonly #live = new Map<string, KeyObject>()
  #dirty = false
  /** Keys generated (not found in the file) since opening. */
  generated = 0

  private constructor(path: string | undefined, stored: CacheFile['keys']) {
    this.path = path
    this.#stored = stored
  }

  /**
   * Opens the cache at `path` (a missing file is an empty cache); no path = memory only.
   *
   * @throws {FleetError} `ERR_FLEET_KEY_CACHE` if the file exists but is not a cache file.
   */
  static async open(path?: string): Promise<KeyCache> {
    if (path === undefined) return new KeyCache(undefined, {})
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new KeyCache(path, {})
      throw new FleetError('ERR_FLEET_KEY_CACHE', `cannot read key cache ${path}`, { cause: err })
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (cause) {
      throw new FleetError('ERR_FLEET_KEY_CACHE', `key cache ${path} is not JSON`, { cause })
    }
    const file = parsed as Partial<CacheFile>
    if (file.version !== 1 || typeof file.keys !== 'object' || file.keys === null) {
      throw new FleetError('ERR_FLEET_KEY_CACHE', `key cache ${path} has an unknown format`)
    }
    return new KeyCache(path, file.keys)
  }

  /** Returns the key `name`, generating (and remembering) one of `kind` if absent. */
  get(name: string, kind: SoftKeyType): KeyObject {
    const live = this.#live.get(name)
    if (live !== undefined) return live
    const stored = this.#stored[name]
    let key: KeyObject | undefined
    if (stored !== undefined && stored.kind === kind) {
      try {
        key = createPrivateKey({
          key: Buffer.from(stored.pkcs8, 'base64'),
          format: 'der',
          type: 'pkcs8',
        })
      } catch {
        key = undefined // regenerate a corrupt entry
      }
    }
    if (key === undefined) {
      key = generateSoftTpmKey(kind)
      this.generated++
      if (this.path !== undefined) {
        const der = key.export({ format: 'der', type: 'pkcs8' })
        this.#stored[name] = { kind, pkcs8: Buffer.from(der).toString('base64') }
        this.#dirty = true
      }
    }
    this.#live.set(name, key)
    return key
  }

  /** Writes the file (atomically, mode 0600) if keys were added. */
  async save(): Promise<void> {
    if (this.path === undefined || !this.#dirty) return
    const tmp = `${this.path}.${process.pid}.tmp`
    const body: CacheFile = { version: 1, keys: this.#stored }
    await writeFile(tmp, JSON.stringify(body), { mode: 0o600 })
    await chmod(tmp, 0o600)
    await rename(tmp, this.path)
    this.#dirty = false
  }
}
