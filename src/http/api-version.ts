/**
 * Keylime REST API versions and the path prefixes that select them (keylime-api.md §1.1).
 *
 * `/v2` and `/v2.0` … `/v2.6` all reach the v2 routes; `/v3` and `/v3.0` the v3 routes. `GET /version`
 * reports {@link CURRENT_API_VERSION} and {@link SUPPORTED_API_VERSIONS} exactly as upstream 7.14 does.
 *
 * @module
 */

/** The API version this server implements as current (upstream 7.14: 2.6). */
export const CURRENT_API_VERSION = '2.6'

/** Every version upstream lists in `supported_versions` (1.0 is deprecated and has no routes). */
export const SUPPORTED_API_VERSIONS = [
  '1.0',
  '2.0',
  '2.1',
  '2.2',
  '2.3',
  '2.4',
  '2.5',
  '2.6',
  '3.0',
] as const

/** A supported API version string. */
export type ApiVersion = (typeof SUPPORTED_API_VERSIONS)[number]

/** The minor versions served under each major prefix. */
export const API_MINOR_VERSIONS = {
  2: ['2.0', '2.1', '2.2', '2.3', '2.4', '2.5', '2.6'],
  3: ['3.0'],
} as const

/** The path prefixes (`/v2`, `/v2.0`, …) that select a major version's routes. */
export function versionPrefixes(major: keyof typeof API_MINOR_VERSIONS): string[] {
  return [`/v${major}`, ...API_MINOR_VERSIONS[major].map((v) => `/v${v}`)]
}

/**
 * The API version a request path names (`/v2.3/agents` → `2.3`; `/v2/agents` → the latest 2.x).
 * Returns undefined when the path has no supported version prefix.
 */
export function apiVersionOfPath(path: string): string | undefined {
  const m = /^\/v(\d+)(?:\.(\d+))?(?:\/|$)/.exec(path)
  if (!m) return undefined
  const major = Number(m[1]) as keyof typeof API_MINOR_VERSIONS
  const minors: readonly string[] | undefined = API_MINOR_VERSIONS[major]
  if (!minors) return undefined
  if (m[2] === undefined) return minors[minors.length - 1]
  const v = `${m[1]}.${m[2]}`
  return minors.includes(v) ? v : undefined
}

/** The body of `GET /version` and `GET /versions`. */
export function versionInfo(): { current_version: string; supported_versions: string[] } {
  return { current_version: CURRENT_API_VERSION, supported_versions: [...SUPPORTED_API_VERSIONS] }
}
