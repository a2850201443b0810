/**
 * Runtime policy v1 (upstream `keylime/ima/ima.py: RUNTIME_POLICY_SCHEMA`, keylime-api §5.2):
 * types, the empty policy, and a schema validator that reports the JSON path of the first error
 * (`$.digests["/usr/bin/ls"][0]: must match ^[0-9a-f]{40,128}$`).
 *
 * @module
 */

import { ImaError } from './errors.ts'

/** `meta.generator` values (upstream `RUNTIME_POLICY_GENERATOR`). */
export const RUNTIME_POLICY_GENERATOR = {
  Unknown: 0,
  EmptyAllowList: 1,
  CompatibleAllowList: 2,
  LegacyAllowList: 3,
} as const

/** The runtime policy format version this release writes and reads. */
export const RUNTIME_POLICY_CURRENT_VERSION = 1

/** A runtime policy document. */
export interface RuntimePolicy {
  meta: { version: number; generator: number; timestamp?: string }
  release: number
  digests: Record<string, string[]>
  excludes: string[]
  keyrings: Record<string, string[]>
  ima: {
    ignored_keyrings: string[]
    log_hash_alg: 'sha1' | 'sha256' | 'sha384' | 'sha512'
    dm_policy: null
  }
  'ima-buf': Record<string, string[]>
  'verification-keys': string
}

/** A fresh copy of upstream's `EMPTY_RUNTIME_POLICY`. */
export function emptyRuntimePolicy(): RuntimePolicy {
  return {
    meta: {
      version: RUNTIME_POLICY_CURRENT_VERSION,
      generator: RUNTIME_POLICY_GENERATOR.EmptyAllowList,
    },
    release: 0,
    digests: {},
    excludes: [],
    keyrings: {},
    ima: { ignored_keyrings: [], log_hash_alg: 'sha1', dm_policy: null },
    'ima-buf': {},
    'verification-keys': '',
  }
}

const DIGEST_RE = /^[0-9a-f]{40,128}$/
const TOP_KEYS = [
  'meta',
  'release',
  'digests',
  'excludes',
  'keyrings',
  'ima',
  'ima-buf',
  'verification-keys',
]

function fail(path: string, msg: string): never {
  throw new ImaError('ERR_IMA_POLICY_INVALID', `${path}: ${msg}`)
}

function key(path: string, k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v)
}

function checkDigestsObject(v: unknown, path: string): void {
  if (!isObject(v)) fail(path, 'must be an object')
  for (const k in v) {
    const list = v[k]
    const p = key(path, k)
    if (!Array.isArray(list)) fail(p, 'must be an array')
    if (list.length === 0) fail(p, 'must have at least 1 item')
    for (let i = 0; i < list.length; i++) {
      const d = list[i]
      if (typeof d !== 'string') fail(`${p}[${i}]`, 'must be a string')
      if (!DIGEST_RE.test(d)) fail(`${p}[${i}]`, 'must match ^[0-9a-f]{40,128}$')
    }
  }
}

function checkStringArray(v: unknown, path: string): void {
  if (!Array.isArray(v)) fail(path, 'must be an array')
  v.forEach((s, i) => {
    if (typeof s !== 'string') fail(`${path}[${i}]`, 'must be a string')
  })
}

/**
 * Validates a parsed policy against the v1 schema (and the `verification-keys` keyring schema).
 *
 * @throws {ImaError} `ERR_IMA_POLICY_INVALID` with the JSON path of the first error.
 */
export function validateRuntimePolicy(v: unknown): asserts v is RuntimePolicy {
  if (!isObject(v)) fail('$', 'must be an object')
  for (const k of TOP_KEYS) if (!(k in v)) fail('$', `missing required property "${k}"`)
  const meta = v.meta
  if (!isObject(meta)) fail('$.meta', 'must be an object')
  if (!('version' in meta)) fail('$.meta', 'missing required property "version"')
  if (!('generator' in meta)) fail('$.meta', 'missing required property "generator"')
  if (!isInt(meta.version) || meta.version < 0) fail('$.meta.version', 'must be an integer >= 0')
  if (!isInt(meta.generator) || meta.generator < 0 || meta.generator > 3) {
    fail('$.meta.generator', 'must be an integer between 0 and 3')
  }
  if ('timestamp' in meta && typeof meta.timestamp !== 'string')
    fail('$.meta.timestamp', 'must be a string')
  if (!isInt(v.release) || v.release < 0) fail('$.release', 'must be an integer >= 0')
  checkDigestsObject(v.digests, '$.digests')
  checkStringArray(v.excludes, '$.excludes')
  checkDigestsObject(v.keyrings, '$.keyrings')
  const ima = v.ima
  if (!isObject(ima)) fail('$.ima', 'must be an object')
  for (const k of ['ignored_keyrings', 'log_hash_alg', 'dm_policy']) {
    if (!(k in ima)) fail('$.ima', `missing required property "${k}"`)
  }
  checkStringArray(ima.ignored_keyrings, '$.ima.ignored_keyrings')
  if (!['sha1', 'sha256', 'sha384', 'sha512'].includes(ima.log_hash_alg as string)) {
    fail('$.ima.log_hash_alg', 'must be one of sha1, sha256, sha384, sha512')
  }
  if (ima.dm_policy !== null)
    fail('$.ima.dm_policy', 'must be null (device-mapper policies are not supported)')
  checkDigestsObject(v['ima-buf'], '$["ima-buf"]')
  const vk = v['verification-keys']
  if (typeof vk !== 'string') fail('$["verification-keys"]', 'must be a string')
  if (vk !== '') {
    let j: unknown
    try {
      j = JSON.parse(vk)
    } catch {
      fail('$["verification-keys"]', 'must be a JSON string')
    }
    validateKeyringJson(j, '$["verification-keys"]')
  }
}

/** Validates the IMA keyring JSON (`{meta?, keyids: int[], pubkeys: string[]}`). */
export function validateKeyringJson(
  j: unknown,
  path = '$',
): asserts j is { keyids: number[]; pubkeys: string[]; meta?: { version: number } } {
  if (!isObject(j)) fail(path, 'keyring must be an object')
  if (!Array.isArray(j.keyids)) fail(`${path}.keyids`, 'must be an array')
  if (!Array.isArray(j.pubkeys)) fail(`${path}.pubkeys`, 'must be an array')
  j.keyids.forEach((k, i) => {
    if (!isInt(k)) fail(`${path}.keyids[${i}]`, 'must be an integer')
  })
  j.pubkeys.forEach((k, i) => {
    if (typeof k !== 'string') fail(`${path}.pubkeys[${i}]`, 'must be a string')
  })
  if ('meta' in j) {
    const m = j.meta
    if (!isObject(m) || !isInt(m.version) || m.version < 1)
      fail(`${path}.meta.version`, 'must be an integer >= 1')
  }
}
