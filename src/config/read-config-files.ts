/**
 * Finds and parses a component's configuration files in upstream Keylime's order
 * (`keylime/config.py` `get_config`):
 *
 * 1. `KEYLIME_<C>_CONFIG=<file>`: when it names an existing regular file, that file alone is
 *    read — no base file, no snippets. When it names nothing (or a directory) upstream logs and
 *    falls back to the installed files; so do we (through `warn`).
 * 2. Otherwise the base file: `/etc/keylime/<c>.conf` if it exists, else
 *    `/usr/etc/keylime/<c>.conf`.
 * 3. Only when a base file was read: every regular file in `/usr/etc/keylime/<c>.conf.d/`, then
 *    in `/etc/keylime/<c>.conf.d/`, each directory in sorted name order. Upstream reads every
 *    file in those directories, not only `*.conf` (its own test snippets are named `001-value2`),
 *    and so do we.
 *
 * Missing files are fine — defaults apply. A file that exists but cannot be read, is not UTF-8,
 * or fails to parse is a {@link ConfigError} (upstream logs a "CRITICAL CONFIG ERROR" and, for
 * a parse error, stops; we stop in both cases rather than run with silently ignored settings).
 *
 * @module
 */

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError } from './errors.ts'
import { createIniStore, type IniStore, MAX_INI_CHARS, parseIni } from './parse-ini.ts'

/** The components with an INI configuration file. */
export type ConfigComponent = 'verifier' | 'registrar' | 'tenant' | 'ca' | 'logging'

/** Receives non-fatal findings (unknown options, fallbacks); defaults to the `config` logger. */
export type ConfigWarn = (message: string, fields?: Record<string, unknown>) => void

/** Options of every `load…Config` function. */
export interface ConfigLoadOptions {
  /** Environment to read `KEYLIME_*` variables from (default `process.env`). */
  env?: Record<string, string | undefined>
  /** The admin configuration directory (default `/etc/keylime`). */
  etcDir?: string
  /** The distribution configuration directory (default `/usr/etc/keylime`). */
  usrEtcDir?: string
  /** Receives warnings; default logs them at WARNING through `getLogger('config')`. */
  warn?: ConfigWarn
}

/** The merged INI content and the files it came from. */
export interface ConfigFiles {
  /** All files merged in order. */
  store: IniStore
  /** Files actually read, in the order applied. */
  sources: string[]
}

type FileKind = 'file' | 'dir' | 'other' | 'missing'

function kindOf(path: string): FileKind {
  try {
    const st = statSync(path)
    return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other'
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing'
    throw new ConfigError(
      'ERR_CONFIG_READ',
      `cannot stat (${code ?? 'error'})`,
      { file: path },
      { cause: err },
    )
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true })

function readInto(path: string, store: IniStore): void {
  let bytes: Uint8Array
  try {
    // Read at most one byte past the limit so a huge file cannot exhaust memory.
    const size = statSync(path).size
    if (size > MAX_INI_CHARS * 4) {
      throw new ConfigError('ERR_CONFIG_SYNTAX', 'file too large', { file: path })
    }
    bytes = readFileSync(path)
  } catch (err) {
    if (err instanceof ConfigError) throw err
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigError(
      'ERR_CONFIG_READ',
      `cannot read (${code ?? 'error'})`,
      { file: path },
      { cause: err },
    )
  }
  let text: string
  try {
    text = UTF8.decode(bytes)
  } catch (err) {
    throw new ConfigError(
      'ERR_CONFIG_SYNTAX',
      'file is not valid UTF-8',
      { file: path },
      { cause: err },
    )
  }
  if (text.startsWith('\uFEFF')) text = text.slice(1)
  parseIni(text, path, store)
}

function snippetFiles(dir: string): string[] {
  if (kindOf(dir) !== 'dir') return []
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigError(
      'ERR_CONFIG_READ',
      `cannot list (${code ?? 'error'})`,
      { file: dir },
      { cause: err },
    )
  }
  // Python's sorted() on the joined paths: same directory, so code-point order of the names.
  return names
    .filter((name) => name !== '')
    .map((name) => join(dir, name))
    .filter((path) => kindOf(path) === 'file')
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

/**
 * Reads `component`'s configuration files, in upstream order, into one store.
 *
 * @throws {@link ConfigError} when a file exists but cannot be read or parsed.
 */
export function readConfigFiles(
  component: ConfigComponent,
  options: ConfigLoadOptions & { warn: ConfigWarn },
): ConfigFiles {
  const env = options.env ?? process.env
  const etcDir = options.etcDir ?? '/etc/keylime'
  const usrEtcDir = options.usrEtcDir ?? '/usr/etc/keylime'
  const store = createIniStore()
  const sources: string[] = []

  const envVar = `KEYLIME_${component.toUpperCase()}_CONFIG`
  const override = env[envVar]
  if (override) {
    const kind = kindOf(override)
    if (kind === 'file') {
      readInto(override, store)
      return { store, sources: [override] }
    }
    options.warn(
      `configuration file set through ${envVar} ${kind === 'missing' ? 'not found' : 'is not a file'}, falling back to installed configuration`,
      { component, file: override },
    )
  }

  const base = [join(etcDir, `${component}.conf`), join(usrEtcDir, `${component}.conf`)].find(
    (path) => kindOf(path) === 'file',
  )
  if (base === undefined) return { store, sources }
  readInto(base, store)
  sources.push(base)

  for (const dir of [join(usrEtcDir, `${component}.conf.d`), join(etcDir, `${component}.conf.d`)]) {
    for (const snippet of snippetFiles(dir)) {
      readInto(snippet, store)
      sources.push(snippet)
    }
  }
  return { store, sources }
}
