/** @module */

/** Formats `host:port` for a URL, bracketing IPv6 literals (upstream #1408). */
export function formatHostPort(host: string, port: number | string): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  return `${h}:${port}`
}
