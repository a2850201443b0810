/**
 * The verifier's timestamps: epoch seconds, as upstream stores them.
 *
 * @module
 */

/** Epoch seconds. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000)
}
