/**
 * Builds runtime policies from allowlists, exclude lists, IMA measurement lists, file trees and
 * initramfs images (upstream `keylime/policy/create_runtime_policy.py`). Pure functions over
 * paths; the CLI wrappers are in `cli.ts`.
 *
 * @module
 */

import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ImaError } from '../ima/errors.ts'
import { getPubkey, ImaKeyring } from '../ima/ima-keyring.ts'
import { compileExcludeList } from '../ima/python-regex.ts'
import { ramdiskDigests } from './ramdisk-digests.ts'
import {
  emptyRuntimePolicy,
  RUNTIME_POLICY_GENERATOR,
  type RuntimePolicy,
  validateRuntimePolicy,
} from '../ima/runtime-policy.ts'

/** Directories never walked under `--rootfs` (upstream `BASE_EXCLUDE_DIRS`). */
export const BASE_EXCLUDE_DIRS = [
  '/sys',
  '/run',
  '/proc',
  '/lost+found',
  '/dev',
  '/media',
  '/snap',
  '/mnt',
  '/var',
  '/tmp',
]

/** Options of {@link createRuntimePolicy}. */
export interface CreateRuntimePolicyOptions {
  basePolicy?: string
  allowlist?: string
  excludeList?: string
  imaMeasurementList?: string
  keyrings?: boolean
  imaBuf?: boolean
  ignoredKeyrings?: string[]
  verificationKeys?: string[]
  algo?: string
  rootfs?: string
  skipPath?: string
  /** Directory of initramfs images (`--ramdisk-dir`, e.g. `/boot`); see `ramdisk-digests.ts`. */
  ramdiskDir?: string
  /** Progress sink for long walks (a line every `progressEvery` files). */
  progress?: (msg: string) => void
  progressEvery?: number
  /** Warning sink: paths under `rootfs` that could not be read ({@link rootfsDigests}). */
  warn?: (msg: string) => void
  /** Clock for `meta.timestamp`. */
  now?: Date
}

type MapList = Record<string, string[]>

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (e) {
    throw new ImaError(
      'ERR_IMA_TOOL',
      `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      { cause: e },
    )
  }
}

function push(m: MapList, k: string, v: string): void {
  const l = m[k]
  if (l === undefined) m[k] = [v]
  else l.push(v)
}

/**
 * Parses a flat `digest  path` allowlist (spaces in paths become `_`); `%keyring:NAME` lines go to
 * `keyrings` when given, as upstream's converter files them.
 */
export function parseFlatAllowlist(text: string, into: MapList = {}, keyrings?: MapList): MapList {
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '') continue
    const m = /^(\S+)\s+(.*)$/.exec(line)
    if (!m) continue
    const digest = (m[1] as string).toLowerCase()
    const path = m[2] as string
    if (keyrings !== undefined && path.startsWith('%keyring:')) {
      push(keyrings, path.slice('%keyring:'.length), digest)
    } else push(into, path.replaceAll(' ', '_'), digest)
  }
  return into
}

/**
 * A legacy allowlist (upstream `convert_legacy_allowlist`) as policy fields: the JSON format
 * (`{"hashes": {...}, "excludes": [...], ...}`) or the flat `digest  path` format.
 *
 * @throws {ImaError} `ERR_IMA_TOOL` for a file that already is a runtime policy or has no digests.
 */
export function readLegacyAllowlist(text: string): Partial<RuntimePolicy> {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    const fields = { digests: {}, keyrings: {} }
    parseFlatAllowlist(text, fields.digests, fields.keyrings)
    return fields
  }
  const o = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>
  if (o.digests !== undefined) {
    throw new ImaError('ERR_IMA_TOOL', 'the allowlist is already a runtime policy (give it as -i)')
  }
  if (typeof o.hashes !== 'object' || o.hashes === null) {
    throw new ImaError('ERR_IMA_TOOL', 'the JSON allowlist has no "hashes" digest list')
  }
  const { hashes, meta: _oldMeta, ...rest } = o
  // The current policy's shape checks (typed errors with a JSON path) guard the merge below.
  const fields = { ...emptyRuntimePolicy(), ...rest, digests: hashes } as RuntimePolicy
  validateRuntimePolicy(fields)
  return fields
}

/** Adds the fields of `base` (an older or partial policy) to `policy`. */
function mergeFields(policy: RuntimePolicy, base: Partial<RuntimePolicy>): void {
  merge(policy.digests, base.digests ?? {})
  policy.excludes.push(...(base.excludes ?? []))
  merge(policy.keyrings, base.keyrings ?? {})
  merge(policy['ima-buf'], base['ima-buf'] ?? {})
  if (base.ima?.log_hash_alg !== undefined) policy.ima.log_hash_alg = base.ima.log_hash_alg
  policy.ima.ignored_keyrings.push(...(base.ima?.ignored_keyrings ?? []))
  if (base['verification-keys']) policy['verification-keys'] = base['verification-keys']
}

/** Digests of ima-ng / ima-sig lines of an ASCII list (path → digests), as upstream. */
export function digestsFromMeasurementList(text: string, into: MapList = {}): MapList {
  for (const line of text.split('\n')) {
    const p = line.split(' ')
    if (p.length < 5) continue
    if (p[2] !== 'ima-sig' && p[2] !== 'ima-ng') continue
    const d = (p[3] as string).split(':')[1]
    if (d === undefined) continue
    push(into, (p[4] as string).replace(/\r$/, ''), d.toLowerCase())
  }
  return into
}

/** The boot_aggregate algorithm of a list's first line (for the digest-algorithm choice). */
export function bootAggregateAlg(text: string): string | undefined {
  const first = text.slice(0, text.indexOf('\n') < 0 ? text.length : text.indexOf('\n')).split(' ')
  if (first[4] !== 'boot_aggregate') return undefined
  const d = first[3] ?? ''
  return d.includes(':') ? d.split(':')[0] : d.length === 40 ? 'sha1' : undefined
}

/** Keyring and ima-buf digests from ima-buf lines (keys: the buffer parses as a key/cert). */
export function imaBufFromMeasurementList(
  text: string,
  ignored: readonly string[],
  wantKeyrings: boolean,
  wantImaBuf: boolean,
  keyrings: MapList,
  imaBuf: MapList,
): void {
  for (const line of text.split('\n')) {
    const p = line.split(' ')
    if (p.length !== 6 || p[2] !== 'ima-buf') continue
    const d = (p[3] as string).split(':')[1]
    if (d === undefined) continue
    const name = p[4] as string
    let isKey = false
    const hex = (p[5] as string).trim()
    if (/^([0-9a-fA-F]{2})+$/.test(hex)) {
      try {
        isKey = getPubkey(Buffer.from(hex, 'hex')) !== null
      } catch {
        isKey = true
      }
    }
    if (isKey) {
      if (ignored.includes(name) || !wantKeyrings) continue
      push(keyrings, name, d)
      continue
    }
    if (wantImaBuf) push(imaBuf, name, d)
  }
}

const HEX_SIZES: Record<string, number> = { sha1: 40, sha256: 64, sha384: 96, sha512: 128 }

function hashFile(path: string, algo: string, buf: Uint8Array): string {
  const h = new Bun.CryptoHasher(algo as 'sha256')
  const fd = openSync(path, 'r')
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null)
      if (n <= 0) break
      h.update(buf.subarray(0, n))
    }
  } finally {
    closeSync(fd)
  }
  return h.digest('hex')
}

/** Options of {@link rootfsDigests}. */
export interface RootfsDigestsOptions {
  /** Paths not entered (`--skip-path`), absolute or relative to the working directory. */
  skip?: readonly string[]
  /** Progress sink (a line every `progressEvery` files). */
  progress?: (msg: string) => void
  progressEvery?: number
  /**
   * Warning sink, called once at the end when directories or root-owned files could not be read
   * (`EACCES` when not run as root, …): they are missing from the policy.
   */
  warn?: (msg: string) => void
}

/** How many unreadable paths a warning names. */
const UNREADABLE_SHOWN = 5

/** One warning line for the paths a walk could not read, by error code. */
export function describeUnreadable(root: string, unreadable: ReadonlyMap<string, string>): string {
  const one = unreadable.size === 1
  const codes = [...new Set(unreadable.values())].sort().join(', ')
  const paths = [...unreadable.keys()].slice(0, UNREADABLE_SHOWN)
  const more = unreadable.size > paths.length ? `, … (${unreadable.size - paths.length} more)` : ''
  return (
    `${unreadable.size} ${one ? 'path' : 'paths'} under ${root} could not be read (${codes}) and ` +
    `${one ? 'is' : 'are'} not in the policy: ${paths.join(', ')}${more}; run the tool as root ` +
    `to include ${one ? 'it' : 'them'}`
  )
}

const errorCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? 'error'

/**
 * Digests every regular, root-owned file under `rootfs` (symlinks and special files skipped,
 * symlinked directories never followed, {@link BASE_EXCLUDE_DIRS} and `skip` not entered).
 * Directories and root-owned files that cannot be read are left out and reported through
 * `o.warn`; paths that vanish during the walk (`ENOENT`) are not.
 */
export function rootfsDigests(
  rootfs: string,
  algo: string,
  into: MapList = {},
  o: RootfsDigestsOptions = {},
): MapList {
  const root = resolve(rootfs)
  const excluded = new Set(BASE_EXCLUDE_DIRS)
  for (const s of o.skip ?? []) {
    const abs = resolve(s)
    if (root === abs || root.startsWith(`${abs}/`)) return into
    if (abs.startsWith(`${root}/`)) excluded.add(abs.slice(root === '/' ? 0 : root.length))
  }
  const every = o.progressEvery ?? 1000
  const unreadable = new Map<string, string>()
  const failed = (path: string, e: unknown) => {
    if (errorCode(e) !== 'ENOENT') unreadable.set(path, errorCode(e))
  }
  const buf = new Uint8Array(1 << 20)
  let count = 0
  const stack: string[] = [root]
  while (stack.length > 0) {
    const dir = stack.pop() as string
    let names: string[]
    try {
      names = readdirSync(dir).sort()
    } catch (e) {
      failed(dir, e)
      continue
    }
    for (const name of names) {
      const full = join(dir, name)
      let st: ReturnType<typeof lstatSync>
      try {
        st = lstatSync(full)
      } catch (e) {
        failed(full, e)
        continue
      }
      const rel = root === '/' ? full : full.slice(root.length)
      if (st.isDirectory()) {
        if (!excluded.has(rel)) stack.push(full)
        continue
      }
      if (!st.isFile() || st.uid !== 0) continue
      try {
        push(into, rel.replaceAll(' ', '_'), hashFile(full, algo, buf))
      } catch (e) {
        failed(full, e)
        continue
      }
      count++
      if (o.progress !== undefined && count % every === 0) o.progress(`${count} files hashed`)
    }
  }
  if (o.progress !== undefined && count >= every) o.progress(`${count} files hashed (done)`)
  if (unreadable.size > 0) o.warn?.(describeUnreadable(root, unreadable))
  return into
}

function merge(a: MapList, b: MapList): MapList {
  for (const k in b) for (const v of b[k] as string[]) push(a, k, v)
  return a
}

/**
 * Creates a runtime policy (upstream `create_runtime_policy`).
 *
 * @throws {ImaError} `ERR_IMA_TOOL` (unreadable input, conflicting digest algorithms),
 *   `ERR_IMA_POLICY_INVALID`, `ERR_IMA_POLICY_REGEX`.
 */
export function createRuntimePolicy(o: CreateRuntimePolicyOptions): RuntimePolicy {
  const policy = emptyRuntimePolicy()
  if (o.basePolicy !== undefined) {
    let base: Partial<RuntimePolicy>
    try {
      base = JSON.parse(readText(o.basePolicy, 'base policy'))
    } catch (e) {
      if (e instanceof ImaError) throw e
      throw new ImaError('ERR_IMA_TOOL', 'base policy is not valid JSON', { cause: e })
    }
    mergeFields(policy, base)
    validateRuntimePolicy(policy)
  }
  let listText: string | undefined
  if (o.imaMeasurementList !== undefined && o.imaMeasurementList !== '/dev/null') {
    listText = readText(o.imaMeasurementList, 'IMA measurement list')
    digestsFromMeasurementList(listText, policy.digests)
  }
  if (o.allowlist !== undefined)
    mergeFields(policy, readLegacyAllowlist(readText(o.allowlist, 'allowlist')))
  let algo = o.algo
  if (algo === undefined && listText !== undefined) {
    const a = bootAggregateAlg(listText)
    if (a !== undefined && a !== 'sha1') algo = a
  }
  algo ??= 'sha256'
  if (HEX_SIZES[algo] === undefined)
    throw new ImaError('ERR_IMA_TOOL', `unsupported digest algorithm ${algo}`)
  if (o.ramdiskDir !== undefined)
    ramdiskDigests(o.ramdiskDir, algo, policy.digests, { progress: o.progress })
  if (o.rootfs !== undefined) {
    const skip = (o.skipPath ?? '').split(',').filter((s) => s !== '')
    rootfsDigests(o.rootfs, algo, policy.digests, {
      skip,
      progress: o.progress,
      progressEvery: o.progressEvery,
      warn: o.warn,
    })
  }
  if (o.excludeList !== undefined) {
    for (const raw of readText(o.excludeList, 'exclude list').split('\n')) {
      const line = raw.trim()
      if (line === '') continue
      compileExcludeList([line])
      policy.excludes.push(line)
    }
  }
  policy.ima.ignored_keyrings.push(...(o.ignoredKeyrings ?? []))
  if (o.keyrings || o.imaBuf) {
    const text =
      listText ??
      readText(
        o.imaMeasurementList ?? '/sys/kernel/security/ima/ascii_runtime_measurements',
        'IMA measurement list',
      )
    imaBufFromMeasurementList(
      text,
      policy.ima.ignored_keyrings,
      !!o.keyrings,
      !!o.imaBuf,
      policy.keyrings,
      policy['ima-buf'],
    )
  }
  if (o.verificationKeys !== undefined && o.verificationKeys.length > 0) {
    const ring =
      policy['verification-keys'] === ''
        ? new ImaKeyring()
        : ImaKeyring.fromJSON(policy['verification-keys'])
    for (const path of o.verificationKeys) {
      let data: Uint8Array
      try {
        data = readFileSync(path)
      } catch (e) {
        throw new ImaError('ERR_IMA_TOOL', `cannot read key ${path}`, { cause: e })
      }
      const k = getPubkey(data)
      if (k === null) throw new ImaError('ERR_IMA_TOOL', `file '${path}' is not a file with a key`)
      ring.add(k.key, k.keyid)
    }
    policy['verification-keys'] = JSON.stringify(ring.toJSON())
  }
  for (const m of [policy.digests, policy.keyrings, policy['ima-buf']]) {
    for (const k in m) m[k] = [...new Set(m[k])].sort()
  }
  policy.excludes = [...new Set(policy.excludes)].sort()
  policy.ima.ignored_keyrings = [...new Set(policy.ima.ignored_keyrings)].sort()
  policy.meta.generator = RUNTIME_POLICY_GENERATOR.LegacyAllowList
  policy.meta.timestamp = (o.now ?? new Date()).toISOString()
  for (const [k, list] of Object.entries(policy.digests)) {
    for (const d of list) {
      if (!/^[0-9a-f]{40,128}$/.test(d)) throw new ImaError('ERR_IMA_TOOL', `bad digest for ${k}`)
    }
  }
  validateRuntimePolicy(policy)
  return policy
}

/** The legacy `digest  path` allowlist text (boot_aggregate first). */
export function legacyAllowlistText(digests: Record<string, string[]>): string {
  let out = ''
  for (const d of digests.boot_aggregate ?? []) out += `${d}  boot_aggregate\n`
  for (const [f, ds] of Object.entries(digests)) {
    if (f === 'boot_aggregate') continue
    for (const d of ds) out += `${d}  ${f}\n`
  }
  return out
}
