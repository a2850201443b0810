/**
 * A reader for the subset of Python's `configparser.RawConfigParser` that Keylime's INI files use
 * (`keylime/config.py` reads every `*.conf` with a default `RawConfigParser()`).
 *
 * Behaviour mirrors CPython 3.x `RawConfigParser._read` with its defaults:
 *
 * - `[section]` headers: the name is everything between the first `[` and the last `]` of the
 *   stripped line and is case-sensitive; text after the last `]` is ignored, as in Python.
 * - `key = value` and `key: value`, split at the first `=` or `:`; option names are lower-cased
 *   (`optionxform`), values are stripped. A line with neither delimiter is a syntax error.
 * - Full-line comments start with `#` or `;` (after optional indentation). Inline comments are
 *   not recognised: `url = http://x/#frag ; note` keeps the whole text, like Python
 *   (`inline_comment_prefixes=None`).
 * - A line indented deeper than the option line that started a value continues that value
 *   (joined with `\n`). Blank lines inside a continued value are kept; trailing ones are dropped.
 *   Comment lines between continuation lines are skipped without ending the value.
 * - `[DEFAULT]` holds fallbacks for every section (no interpolation: this is the *Raw* parser).
 * - Strict mode (Python's default): a section or option repeated **within one file** is an error
 *   (`DuplicateSectionError` / `DuplicateOptionError`). Across files — the base file, then each
 *   snippet — a later file adds to existing sections and its options win.
 * - Options before any section header are an error (`MissingSectionHeaderError`).
 *
 * Every error is a {@link ConfigError} with code `ERR_CONFIG_SYNTAX` carrying file and line.
 *
 * @module
 */

import { ConfigError } from './errors.ts'

/** One option value with its provenance. */
export interface IniEntry {
  /** The value as RawConfigParser returns it: stripped, continuation lines joined by `\n`. */
  value: string
  /** File the value was read from. */
  file: string
  /** 1-based line of the `key = value` line. */
  line: number
}

/** Parsed INI content: `DEFAULT` fallbacks plus named sections, in file order. */
export interface IniStore {
  /** Options of the `[DEFAULT]` section. */
  defaults: Map<string, IniEntry>
  /** Named sections (case-sensitive) → lower-cased option → entry. */
  sections: Map<string, Map<string, IniEntry>>
}

/** Name of the fallback section, as Python's `default_section`. */
export const DEFAULT_SECTION = 'DEFAULT'

/** Largest file accepted, in characters; Keylime's biggest template renders to about 20 KiB. */
export const MAX_INI_CHARS = 1024 * 1024

/** Creates an empty {@link IniStore}. */
export function createIniStore(): IniStore {
  return { defaults: new Map(), sections: new Map() }
}

/** Looks up `option` in `section`, falling back to `[DEFAULT]` as RawConfigParser.get does. */
export function getIniEntry(
  store: IniStore,
  section: string,
  option: string,
): IniEntry | undefined {
  return store.sections.get(section)?.get(option) ?? store.defaults.get(option)
}

interface OpenValue {
  entry: IniEntry
  lines: string[]
}

/**
 * Splits a stripped option line as Python's `OPTCRE` (`(?P<option>.*?)\s*(?P<vi>=|:)\s*(?P<value>.*)$`)
 * does: at the first `=` or `:`. Written as two scans, not that regex: its lazy group and the
 * `\s*` after it backtrack quadratically on a long line without a delimiter.
 */
function splitOptionLine(stripped: string): { name: string; value: string } | undefined {
  const eq = stripped.indexOf('=')
  const colon = stripped.indexOf(':')
  const at = eq < 0 ? colon : colon < 0 ? eq : Math.min(eq, colon)
  if (at < 0) return undefined
  return { name: stripped.slice(0, at).trimEnd(), value: stripped.slice(at + 1).trim() }
}

/**
 * Parses one file's text into `store` (a fresh store when omitted) and returns the store, so
 * several files can be read in order like `RawConfigParser.read([...])`.
 *
 * @param text - The file content.
 * @param file - The file name used in errors and in {@link IniEntry.file}.
 * @param store - The store to add to; later files override earlier ones option by option.
 * @throws {@link ConfigError} `ERR_CONFIG_SYNTAX` on a malformed line, a duplicate within this
 *   file, an option before the first section, or text larger than {@link MAX_INI_CHARS}.
 *
 * @example
 * ```ts
 * const store = parseIni('[verifier]\nport = 8881\n', 'verifier.conf')
 * store.sections.get('verifier')?.get('port')?.value // '8881'
 * ```
 */
export function parseIni(text: string, file: string, store: IniStore = createIniStore()): IniStore {
  if (text.length > MAX_INI_CHARS) {
    throw new ConfigError('ERR_CONFIG_SYNTAX', `file larger than ${MAX_INI_CHARS} characters`, {
      file,
    })
  }
  // Python opens files with universal newlines: \r\n, \r and \n all end a line.
  const lines = text.split(/\r\n|\r|\n/)
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop()

  const seenSections = new Set<string>()
  const seenOptions = new Set<string>()
  let current: Map<string, IniEntry> | undefined
  let currentName: string | undefined
  let open: OpenValue | undefined
  const opened: OpenValue[] = []
  let indentLevel = 0

  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string
    const lineNo = i + 1
    const stripped = raw.trim()
    const isComment = stripped.startsWith('#') || stripped.startsWith(';')
    if (isComment) continue
    if (stripped === '') {
      // empty_lines_in_values=True: an empty line belongs to the open value (trimmed at the end).
      if (open !== undefined) open.lines.push('')
      continue
    }
    const curIndent = raw.search(/\S/)
    if (current !== undefined && open !== undefined && curIndent > indentLevel) {
      open.lines.push(stripped)
      continue
    }
    indentLevel = curIndent
    if (stripped.startsWith('[')) {
      const close = stripped.lastIndexOf(']')
      if (close > 1) {
        const name = stripped.slice(1, close)
        // Python tracks duplicates only for named sections; a repeated [DEFAULT] just merges.
        if (seenSections.has(name) && name !== DEFAULT_SECTION) {
          throw new ConfigError('ERR_CONFIG_SYNTAX', `section [${name}] already exists`, {
            file,
            line: lineNo,
            section: name,
          })
        }
        seenSections.add(name)
        currentName = name
        if (name === DEFAULT_SECTION) {
          current = store.defaults
        } else {
          current = store.sections.get(name)
          if (current === undefined) {
            current = new Map()
            store.sections.set(name, current)
          }
        }
        open = undefined
        continue
      }
    }
    if (current === undefined || currentName === undefined) {
      throw new ConfigError('ERR_CONFIG_SYNTAX', 'file contains no section headers', {
        file,
        line: lineNo,
      })
    }
    const option = splitOptionLine(stripped)
    const name = option?.name.toLowerCase()
    if (option === undefined || name === undefined || name === '') {
      throw new ConfigError(
        'ERR_CONFIG_SYNTAX',
        'line is neither a section, an option nor a comment',
        {
          file,
          line: lineNo,
          section: currentName,
        },
      )
    }
    const key = `${currentName}\u0000${name}`
    if (seenOptions.has(key)) {
      throw new ConfigError(
        'ERR_CONFIG_SYNTAX',
        'option already set in this section of this file',
        {
          file,
          line: lineNo,
          section: currentName,
          option: name,
        },
      )
    }
    seenOptions.add(key)
    const entry: IniEntry = { value: '', file, line: lineNo }
    open = { entry, lines: [option.value] }
    opened.push(open)
    current.set(name, entry)
  }

  // _join_multiline_values: '\n'.join(lines).rstrip()
  for (const value of opened) value.entry.value = value.lines.join('\n').trimEnd()
  return store
}
