/**
 * The Keylime work directory (`keylime/config.py` `WORK_DIR`).
 * @module
 */

import { ConfigError } from './errors.ts'

/** Upstream's default work directory. */
export const DEFAULT_KEYLIME_DIR = '/var/lib/keylime'

/**
 * Returns `KEYLIME_DIR` when set and non-empty; otherwise the current directory when
 * `KEYLIME_TEST` is on (upstream's test mode), else `/var/lib/keylime`.
 *
 * `KEYLIME_TEST` takes `on`/`true`/`1` or `off`/`false`/`0` (any case), as upstream's
 * `environ_bool`; anything else is a {@link ConfigError} naming the variable.
 *
 * @example
 * ```ts
 * getKeylimeDir({ KEYLIME_DIR: '/srv/keylime' }) // '/srv/keylime'
 * getKeylimeDir({})                              // '/var/lib/keylime'
 * ```
 */
export function getKeylimeDir(
  env: Record<string, string | undefined> = process.env,
  cwd: () => string = () => process.cwd(),
): string {
  const dir = env.KEYLIME_DIR
  if (dir) return dir
  return isTestMode(env) ? cwd() : DEFAULT_KEYLIME_DIR
}

/** Whether `KEYLIME_TEST` enables upstream's test mode. */
export function isTestMode(env: Record<string, string | undefined> = process.env): boolean {
  const value = (env.KEYLIME_TEST ?? 'default').toLowerCase()
  if (value === 'on' || value === 'true' || value === '1') return true
  if (value === 'off' || value === 'false' || value === '0' || value === 'default') return false
  throw new ConfigError('ERR_CONFIG_INVALID', 'expected on/true/1 or off/false/0', {
    envVar: 'KEYLIME_TEST',
  })
}
