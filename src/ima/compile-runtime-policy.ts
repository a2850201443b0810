/**
 * Loads a runtime policy once into a compact, shareable index: `path → digest` maps (a single
 * digest is stored as a plain string, several as an array), the exclude list as one anchored
 * matcher, the ignored keyrings as a Set and the `verification-keys` keyring loaded. The parsed
 * JSON document is dropped, so many agents sharing one policy share one index
 * ({@link PolicyCache}).
 *
 * @module
 */

import { createHash } from 'node:crypto'
import type { TextMatcher } from '../protocol/linear-regex.ts'
import type { HashAlg } from '../tpm/constants.ts'
import { dssePayload, isDsseEnvelope, parseDsseEnvelope, verifyDsseEnvelope } from './dsse.ts'
import { ImaError } from './errors.ts'
import { ImaKeyring } from './ima-keyring.ts'
import { compileExcludeList } from './python-regex.ts'
import { type RuntimePolicy, validateRuntimePolicy } from './runtime-policy.ts'

/** `path → allowed digests` with one digest stored unwrapped. */
export type DigestIndex = Map<string, string | string[]>

/** A validated, indexed runtime policy. Immutable; share it freely. */
export interface CompiledRuntimePolicy {
  /** sha256 hex of the policy bytes as submitted (upstream's `checksum`). */
  readonly checksum: string
  /** `ima.log_hash_alg`: the algorithm of column 2 of the ASCII list. */
  readonly logHashAlg: HashAlg
  readonly digests: DigestIndex
  readonly keyrings: DigestIndex
  readonly imaBuf: DigestIndex
  /** Combined exclude matcher (Python `re.match` semantics, linear time), or null. */
  readonly exclude: TextMatcher | null
  /** `ima.ignored_keyrings` (may contain `*`). */
  readonly ignoredKeyrings: ReadonlySet<string>
  /** Keys from `verification-keys` (upstream's tenant keyring), or null when empty. */
  readonly verificationKeys: ImaKeyring | null
  /** `meta.generator`. */
  readonly generator: number
  /** Number of paths in `digests`. */
  readonly pathCount: number
}

/** Options of {@link loadRuntimePolicy}. */
export interface LoadPolicyOptions {
  /** `require_allow_list_signatures`: the policy must be a DSSE envelope that verifies. */
  requireSignature?: boolean
  /** PEM public key (or certificate) to verify DSSE signatures with (`runtime_policy_key`). */
  key?: string | Uint8Array
}

/** Looks up whether `digest` (lowercase hex) is allowed for `name` in an index. */
export function indexHas(index: DigestIndex, name: string, digest: string): boolean | undefined {
  const v = index.get(name)
  if (v === undefined) return undefined
  return typeof v === 'string' ? v === digest : v.includes(digest)
}

/** The allowed digests of `name`, as an array (for failure contexts). */
export function indexGet(index: DigestIndex, name: string): string[] {
  const v = index.get(name)
  return v === undefined ? [] : typeof v === 'string' ? [v] : v
}

function buildIndex(obj: Record<string, string[]>): DigestIndex {
  const m: DigestIndex = new Map()
  for (const k in obj) {
    const list = obj[k] as string[]
    const uniq = list.length === 1 ? list : [...new Set(list)]
    m.set(k, uniq.length === 1 ? (uniq[0] as string) : uniq)
  }
  return m
}

/** Compiles an already validated policy document. */
export function compileRuntimePolicy(
  policy: RuntimePolicy,
  checksum: string,
): CompiledRuntimePolicy {
  const vk = policy['verification-keys']
  const digests = buildIndex(policy.digests)
  return {
    checksum,
    logHashAlg: policy.ima.log_hash_alg,
    digests,
    keyrings: buildIndex(policy.keyrings),
    imaBuf: buildIndex(policy['ima-buf']),
    exclude: compileExcludeList(policy.excludes),
    ignoredKeyrings: new Set(policy.ima.ignored_keyrings),
    verificationKeys: vk === '' ? null : ImaKeyring.fromJSON(vk),
    generator: policy.meta.generator,
    pathCount: digests.size,
  }
}

/**
 * Parses the policy bytes as submitted (plain JSON or a DSSE envelope), verifies the signature
 * when required, validates the schema and compiles it.
 *
 * @throws {ImaError} `ERR_IMA_POLICY_INVALID`, `ERR_IMA_POLICY_REGEX`, `ERR_IMA_POLICY_SIGNATURE`,
 *   `ERR_IMA_KEYRING`.
 */
export function loadRuntimePolicy(
  bytes: string | Uint8Array,
  opts: LoadPolicyOptions = {},
): CompiledRuntimePolicy {
  const raw = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes
  const checksum = createHash('sha256').update(raw).digest('hex')
  const doc = parseRuntimePolicyDocument(raw, opts)
  return compileRuntimePolicy(doc, checksum)
}

/** Parses, unwraps/verifies and validates a policy without compiling it. */
export function parseRuntimePolicyDocument(
  raw: Uint8Array,
  opts: LoadPolicyOptions = {},
): RuntimePolicy {
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(raw).toString('utf8'))
  } catch (e) {
    throw new ImaError('ERR_IMA_POLICY_INVALID', 'runtime policy is not valid JSON', { cause: e })
  }
  if (isDsseEnvelope(json)) {
    // upstream `verify_runtime_policy` looks at the signatures only when it verifies them
    const payload = opts.requireSignature
      ? verifyDsseEnvelope(parseDsseEnvelope(json), opts.key)
      : dssePayload(json)
    try {
      json = JSON.parse(Buffer.from(payload).toString('utf8'))
    } catch (e) {
      throw new ImaError('ERR_IMA_POLICY_INVALID', 'DSSE payload is not valid JSON', { cause: e })
    }
  } else if (opts.requireSignature) {
    throw new ImaError('ERR_IMA_POLICY_SIGNATURE', 'runtime policy is not signed', { status: 400 })
  }
  validateRuntimePolicy(json)
  return json
}
