/**
 * Issues signed EARs: the claims-set of `ear-claims.ts`, signed ES256 with the active key of an
 * {@link EarKeyRing}, and the JWKS relying parties verify them with.
 *
 * @module
 */
import { type EarAppraisal, earClaims } from './ear-claims.ts'
import type { EarKeyRing } from './ear-keys.ts'
import { type PublicJwk, signJwtEs256 } from './sign-jwt.ts'

/** Signs EARs with the verifier's current key. */
export class EarIssuer {
  readonly #keys: EarKeyRing
  readonly #now: () => number

  /** @param now clock in epoch ms (tests) */
  constructor(keys: EarKeyRing, now: () => number = Date.now) {
    this.#keys = keys
    this.#now = now
  }

  /**
   * A compact JWT of the EAR of `submods`.
   *
   * @param nonce a nonce checked by `checkEarNonce`, echoed as `eat_nonce`
   */
  async sign(submods: Record<string, EarAppraisal>, nonce?: string): Promise<string> {
    const now = this.#now()
    const { key, kid } = await this.#keys.current(now)
    const claims = earClaims({ submods, iat: Math.floor(now / 1000), nonce })
    return signJwtEs256(claims, key, kid)
  }

  /** The JWKS: the active key first, then the previous ones still accepted. */
  async jwks(): Promise<{ keys: PublicJwk[] }> {
    return (await this.#keys.current(this.#now())).jwks
  }
}
