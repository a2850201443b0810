/**
 * Timestamps as upstream's push API writes them: `datetime.isoformat(timespec="microseconds")` in
 * UTC, e.g. `2026-01-15T10:30:00.123000+00:00` (push-protocol.md §1.5.1). Strings of this one
 * format sort as the instants they name, so the database compares them as text.
 *
 * @module
 */

/** `ms` (epoch milliseconds) as an ISO 8601 UTC timestamp with microseconds and `+00:00`. */
export function isoMicros(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000+00:00')
}
