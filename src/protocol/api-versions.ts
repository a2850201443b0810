/**
 * Keylime API version strings (`major.minor`): the agent API versions 7.14 defines, numeric
 * comparison ("2.10" after "2.9") and the newest version two sides share.
 *
 * @module
 */

/** Agent API versions of pull mode (rust-keylime `SUPPORTED_API_VERSIONS`), oldest first. */
export const AGENT_API_VERSIONS = ['2.1', '2.2', '2.3', '2.4', '2.5', '2.6'] as const

/** Compares two `major.minor` version strings numerically (negative when a < b). */
export function compareApiVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number)
  const [bm = 0, bn = 0] = b.split('.').map(Number)
  return am !== bm ? am - bm : an - bn
}

/** The newest version of `ours` that `theirs` lists (only string entries count), or undefined. */
export function newestCommonVersion(
  ours: readonly string[],
  theirs: readonly unknown[],
): string | undefined {
  const set = new Set(theirs.filter((v): v is string => typeof v === 'string'))
  return ours
    .filter((v) => set.has(v))
    .sort(compareApiVersions)
    .at(-1)
}
