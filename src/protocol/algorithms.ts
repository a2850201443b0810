/**
 * Accept-list checks for the algorithms an agent reports with a quote (upstream
 * `keylime/common/algorithms.py: is_accepted`): a direct match, or a match after normalising
 * encryption algorithms the API 2.5 way (`rsa` → `rsa2048`, `ecc` → `ecc256`), so an old accept
 * list `['ecc', 'rsa']` accepts a 2.5 agent's `ecc256` and vice versa.
 *
 * @module
 */

/** Normalises an encryption algorithm name (`rsa` → `rsa2048`, `ecc` → `ecc256`). */
export function normalizeEncAlg(alg: string): string {
  const a = alg.toLowerCase()
  if (a === 'rsa') return 'rsa2048'
  if (a === 'ecc') return 'ecc256'
  return a
}

/** Whether `alg` is in `accepted` (directly or after normalisation). */
export function isAccepted(alg: string, accepted: readonly unknown[]): boolean {
  if (accepted.includes(alg)) return true
  const n = normalizeEncAlg(alg)
  return accepted.some((a) => normalizeEncAlg(String(a)) === n)
}
