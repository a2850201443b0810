/**
 * The registrar's view of `[tenant] tpm_cert_store` (upstream's registrar reads the tenant's
 * option for IAK/IDevID trust; we use it for EK certificates too). The directory is re-read at
 * most every `ttlMs`, so vendor certificates an operator adds take effect without a restart;
 * a load failure is kept (and returned) like a store, so callers record `no_store`.
 *
 * @module
 */
import { type CertStore, loadCertStore } from '../tpm/cert-store.ts'

/** Options of {@link CertStoreCache}. */
export interface CertStoreCacheOptions {
  /** How long a loaded store (or load error) is reused, in ms. Default 30 s. */
  ttlMs?: number
  /** Clock (injected in tests). */
  now?: () => number
}

/** A time-bounded cache of one `tpm_cert_store` directory. */
export class CertStoreCache {
  readonly dir: string
  readonly #ttlMs: number
  readonly #now: () => number
  #value: CertStore | Error | undefined
  #loadedAt = 0

  constructor(dir: string, options: CertStoreCacheOptions = {}) {
    this.dir = dir
    this.#ttlMs = options.ttlMs ?? 30_000
    this.#now = options.now ?? Date.now
  }

  /** The store, or the error loading it raised. */
  get(): CertStore | Error {
    const t = this.#now()
    if (this.#value === undefined || t - this.#loadedAt >= this.#ttlMs) {
      try {
        this.#value = loadCertStore(this.dir)
      } catch (e) {
        this.#value = e instanceof Error ? e : new Error(String(e))
      }
      this.#loadedAt = t
    }
    return this.#value
  }
}
