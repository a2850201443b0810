/**
 * Stand-alone entrypoint of `keylime_ca` (`bun src/ca/keylime-ca-main.ts -c init …`), used by the
 * integration tests and until `src/main.ts` dispatches on the program name. Settings are
 * upstream's defaults overridden by `KEYLIME_CA_<OPTION>` environment variables (upstream's
 * per-option override names); the work dir is `KEYLIME_DIR` (default `/var/lib/keylime`).
 *
 * @module
 */
import 'reflect-metadata'
import { type CaSettings, DEFAULT_CA_SETTINGS } from './ca-settings.ts'
import { runCaCli } from './run-ca-cli.ts'

/** Builds `[ca]` settings from the defaults and `KEYLIME_CA_<OPTION>` variables. */
export function caSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): CaSettings {
  const s: Record<string, string | number> = { ...DEFAULT_CA_SETTINGS }
  for (const key of Object.keys(DEFAULT_CA_SETTINGS)) {
    const v = env[`KEYLIME_CA_${key.toUpperCase()}`]
    if (v !== undefined) s[key] = typeof s[key] === 'number' ? Number(v) : v
  }
  return s as unknown as CaSettings
}

if (import.meta.main) {
  const code = await runCaCli(process.argv.slice(2), {
    settings: caSettingsFromEnv(),
    keylimeDir: process.env.KEYLIME_DIR ?? '/var/lib/keylime',
  })
  process.exit(code)
}
