/**
 * Database URL redaction for logs and error messages.
 *
 * @module
 */

/**
 * Returns `url` with any password replaced by `***` (`postgresql://keylime:***@db/keylime`),
 * including a `password=` query parameter. Strings that are not `scheme://…` URLs are cut to
 * their scheme, so a malformed URL with a password in it is never echoed either.
 *
 * @example
 * ```ts
 * redactDatabaseUrl('postgresql://kl:s3cret@db:5432/kl') // 'postgresql://kl:***@db:5432/kl'
 * ```
 */
export function redactDatabaseUrl(url: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]
  let parsed: URL
  try {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new Error('no authority')
    parsed = new URL(url)
  } catch {
    return scheme ? `${scheme}://[unparsable]` : '[unparsable]'
  }
  if (parsed.password) parsed.password = '***'
  for (const key of [...parsed.searchParams.keys()]) {
    if (key.toLowerCase() === 'password') parsed.searchParams.set(key, '***')
  }
  return parsed.toString()
}
