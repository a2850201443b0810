/**
 * Builds the policy part of an enrolment or a policy upload from the command line, as upstream
 * `keylime/cli/policies.py: process_policy` and `tpm_util.readPolicy` do:
 *
 * - `--tpm_policy`: a JSON object of PCR → digest(s); PCR 10 (IMA) and 16 (NK binding) are refused;
 *   the `mask` is derived from the keys.
 * - A runtime policy (`--runtime-policy` file or `--runtime-policy-url` + checksum, deprecated
 *   `--allowlist`/`--exclude` converted to a policy) or a runtime-policy name adds PCR 10.
 * - A measured-boot policy (`--mb-policy FILE|default`) or name adds PCRs 0–9 and 11–15; a
 *   `--tpm_policy` naming one of those is refused.
 *
 * Runtime policies are validated with `src/ima` (the JSON path of the first error is in the
 * message; DSSE signatures are verified with `--runtime-policy-sig-key` or the embedded
 * certificates). Failures are usage errors (exit 2) for bad flag values and input errors (exit 6)
 * for bad files.
 *
 * @module
 */
import { createHash, createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRuntimePolicy } from '../policy-tools/create-runtime-policy.ts'
import { parseRuntimePolicyDocument } from '../ima/compile-runtime-policy.ts'
import { getPubkey, ImaKeyring } from '../ima/ima-keyring.ts'
import { IMA_PCR, MEASUREDBOOT_PCRS } from '../protocol/keylime-pcrs.ts'
import {
  checkUserTpmPolicy,
  formatMask,
  parseTpmPolicy,
  pcrMask,
  type TpmPolicy,
  TpmPolicyError,
} from '../protocol/tpm-policy.ts'
import { inputError, TenantError, usageError } from './errors.ts'
import type { TenantContext } from './tenant-context.ts'
import { pyJson } from './tenant-output.ts'

/** Largest policy file read. */
const MAX_POLICY_BYTES = 64 * 1024 * 1024

/** The policies in the form `POST /agents` and the policy routes take. */
export interface BuiltPolicies {
  tpmPolicy: TpmPolicy
  /** base64 of the runtime policy (or DSSE envelope) bytes, or `""`. */
  runtimePolicy: string
  /** base64 of the DSSE verification key, or `""`. */
  runtimePolicyKey: string
  runtimePolicyName: string
  /** Measured-boot policy JSON text, or null. */
  mbPolicy: string | null
  mbPolicyName: string
  /** Deprecated keyring JSON string, or `""`. */
  imaSignVerificationKeys: string
}

/**
 * Reads `--tpm_policy` (upstream `readPolicy`): the shared `tpm_policy` grammar plus the tenant's
 * rule ({@link checkUserTpmPolicy}); any `mask` given is replaced by the one the PCRs select.
 *
 * @throws {TenantError} `ERR_TENANT_USAGE` for invalid JSON, PCR numbers, PCR 10/16, non-hex digests.
 */
export function readTpmPolicyOption(text: string | undefined): TpmPolicy {
  try {
    // upstream json.loads: '' is not JSON and null is not an object, whatever the verifier stores
    if (text !== undefined && text.trim() === '')
      throw new TpmPolicyError('json', 'tpm_policy is not valid JSON')
    if (text !== undefined && text.trim() === 'null')
      throw new TpmPolicyError('not-object', 'tpm_policy must be a JSON object')
    const policy = parseTpmPolicy(text ?? '{}')
    checkUserTpmPolicy(policy)
    return { pcrs: policy.pcrs, mask: pcrMask(policy.pcrs.keys()) }
  } catch (e) {
    if (!(e instanceof TpmPolicyError)) throw e
    throw tpmPolicyUsageError(e)
  }
}

/** The tenant's wording of a {@link TpmPolicyError}. */
function tpmPolicyUsageError(e: TpmPolicyError): TenantError {
  switch (e.reason) {
    case 'json':
      return usageError(
        '--tpm_policy is not valid JSON',
        `example: --tpm_policy '{"15":["${'0'.repeat(64)}"]}'`,
      )
    case 'not-object':
      return usageError('--tpm_policy must be a JSON object of PCR number → digest(s)')
    case 'mask':
    case 'pcr':
      return usageError(`Invalid tpm policy pcr number: ${e.key}`)
    case 'data-pcr':
      return usageError(e.message, 'remove PCR 16 from --tpm_policy')
    case 'ima-pcr':
      return usageError(e.message, 'remove PCR 10 from --tpm_policy; use --runtime-policy for IMA')
    case 'digest':
      return usageError(`--tpm_policy PCR ${e.key} must be a hex digest or a list of hex digests`)
  }
}

function addToMask(p: TpmPolicy, pcrs: readonly number[]): void {
  p.mask = (p.mask | pcrMask(pcrs)) >>> 0
}

/** Refuses `tpm_policy` PCRs that another policy owns (upstream `enforce_pcrs`, which exits 1). */
function enforcePcrs(p: TpmPolicy, protectedPcrs: readonly number[], use: string): void {
  for (const pcr of p.pcrs.keys()) {
    if (protectedPcrs.includes(pcr))
      throw usageError(
        `PCR ${pcr} is specified in "tpm_policy", but will in fact be used by ${use}. Please remove it from policy`,
      )
  }
}

/** Reads a local file for a policy option. */
export function readPolicyFile(path: string, option: string): Buffer {
  let buf: Buffer
  try {
    buf = readFileSync(path)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error'
    throw inputError(
      `cannot read ${option} file ${path}: ${code}`,
      `check the path given to ${option}`,
      e,
    )
  }
  if (buf.byteLength > MAX_POLICY_BYTES)
    throw inputError(`${option} file ${path} is larger than ${MAX_POLICY_BYTES} bytes`)
  return buf
}

/**
 * Downloads a policy (`--runtime-policy-url`, `--allowlist-url`); redirects are not followed, as
 * upstream (`allow_redirects=False`).
 *
 * @throws {TenantError} `ERR_TENANT_UNREACHABLE` or `ERR_TENANT_INPUT` (non-200 answer).
 */
export async function downloadPolicy(
  ctx: TenantContext,
  url: string,
  option: string,
): Promise<Buffer> {
  if (!/^https?:\/\//i.test(url)) throw usageError(`${option} must be an http:// or https:// URL`)
  ctx.out.info(`Downloading ${option.replace(/^--/, '')} from ${url}`)
  let res: Response
  try {
    res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(ctx.timeoutMs) })
  } catch (e) {
    throw new TenantError(
      'ERR_TENANT_UNREACHABLE',
      `cannot download ${url}: ${(e as Error).message}`,
      {
        hint: `check ${option}`,
        cause: e,
      },
    )
  }
  if (res.status !== 200) {
    await res.body?.cancel()
    throw inputError(`Downloading ${url} failed with status code ${res.status}!`, `check ${option}`)
  }
  const buf = Buffer.from(await res.arrayBuffer())
  if (buf.byteLength > MAX_POLICY_BYTES)
    throw inputError(`${url} is larger than ${MAX_POLICY_BYTES} bytes`)
  return buf
}

/**
 * Loads and validates a runtime policy (upstream `ima.read_runtime_policy`): checks JSON and
 * schema, verifies a DSSE envelope (with the key, or the embedded certificates), compares the
 * SHA-256 checksum if given.
 *
 * @returns base64 of the policy bytes and of the key file (or `""`).
 * @throws {TenantError} `ERR_TENANT_INPUT` naming the source and the JSON path of the error.
 */
export function validateRuntimePolicyBytes(
  bytes: Buffer,
  source: string,
  checksum: string | undefined,
  keyBytes: Buffer | undefined,
): { policy: string; key: string } {
  let isEnvelope = false
  try {
    const j = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>
    isEnvelope = typeof j === 'object' && j !== null && 'payload' in j
  } catch {
    // reported by the validator below with its message
  }
  try {
    parseRuntimePolicyDocument(bytes, {
      requireSignature: keyBytes !== undefined || isEnvelope,
      key: keyBytes,
    })
  } catch (e) {
    throw inputError(
      `Validation for runtime policy ${source} failed! Error: ${(e as Error).message}`,
      'check the policy against the runtime policy format (keylime-policy create runtime writes one)',
      e,
    )
  }
  const calculated = createHash('sha256').update(bytes).digest('hex')
  if (checksum && checksum.toLowerCase() !== calculated) {
    throw inputError(
      `Checksum of runtime policy does not match! Expected ${checksum}, Calculated ${calculated}`,
      'check --runtime-policy-checksum',
    )
  }
  return {
    policy: bytes.toString('base64'),
    key: keyBytes === undefined ? '' : keyBytes.toString('base64'),
  }
}

/** Deprecated `--signature-verification-key` files → upstream keyring JSON string. */
function buildKeyring(files: readonly string[]): string {
  const ring = new ImaKeyring()
  for (const f of files) {
    const data = readPolicyFile(f, '--signature-verification-key')
    let pub: ReturnType<typeof getPubkey>
    try {
      pub = getPubkey(new Uint8Array(data))
    } catch (e) {
      throw inputError(`File '${f}' does not have a supported key: ${(e as Error).message}`)
    }
    if (!pub) throw inputError(`File '${f}' is not a file with a key`)
    ring.add(pub.key, pub.keyid)
  }
  return JSON.stringify(ring.toJSON())
}

/**
 * Builds the policies from the options (upstream `process_policy`).
 *
 * @throws {TenantError} usage errors for flag values, input errors for files.
 */
export async function buildPolicies(ctx: TenantContext): Promise<BuiltPolicies> {
  const o = ctx.opts
  const tpmPolicy = readTpmPolicyOption(o.tpmPolicy)
  const out: BuiltPolicies = {
    tpmPolicy,
    runtimePolicy: '',
    runtimePolicyKey: '',
    runtimePolicyName: '',
    mbPolicy: null,
    mbPolicyName: '',
    imaSignVerificationKeys: '',
  }
  if (o.imaSignVerificationKeys.length > 0) {
    addToMask(tpmPolicy, [IMA_PCR])
    ctx.out.warn(
      'Verification key support in the Keylime tenant is deprecated. Provide verification keys as part of a runtime policy instead.',
    )
    out.imaSignVerificationKeys = buildKeyring(o.imaSignVerificationKeys)
  }
  if (o.allowlist !== undefined || o.allowlistUrl !== undefined) {
    ctx.out.warn(
      '--allowlist is deprecated. Keylime has implemented support for a unified policy format; convert with keylime_convert_runtime_policy or keylime-policy.',
    )
    enforcePcrs(tpmPolicy, [IMA_PCR], 'IMA')
    addToMask(tpmPolicy, [IMA_PCR])
    let path = o.allowlist
    if (path === undefined) {
      const bytes = await downloadPolicy(ctx, o.allowlistUrl as string, '--allowlist-url')
      const { mkdtempSync, writeFileSync } = await import('node:fs')
      const { tmpdir } = await import('node:os')
      const { join } = await import('node:path')
      path = join(mkdtempSync(join(tmpdir(), 'keylime-')), 'allowlist.txt')
      writeFileSync(path, bytes, { mode: 0o600 })
    }
    readPolicyFile(path, '--allowlist')
    if (o.exclude !== undefined) readPolicyFile(o.exclude, '--exclude')
    let policy: unknown
    try {
      policy = createRuntimePolicy({ allowlist: path, excludeList: o.exclude })
    } catch (e) {
      throw inputError(
        `cannot convert allowlist ${path}: ${(e as Error).message}`,
        'check --allowlist/--exclude',
        e,
      )
    }
    out.runtimePolicy = Buffer.from(JSON.stringify(policy)).toString('base64')
  }
  if (o.exclude !== undefined)
    ctx.out.warn('--exclude is deprecated; put the excludes into the runtime policy.')
  if (o.runtimePolicy !== undefined || o.runtimePolicyUrl !== undefined) {
    enforcePcrs(tpmPolicy, [IMA_PCR], 'IMA')
    addToMask(tpmPolicy, [IMA_PCR])
    const source = o.runtimePolicy ?? (o.runtimePolicyUrl as string)
    const bytes =
      o.runtimePolicy !== undefined
        ? readPolicyFile(o.runtimePolicy, '--runtime-policy')
        : await downloadPolicy(ctx, o.runtimePolicyUrl as string, '--runtime-policy-url')
    const key =
      o.runtimePolicySigKey !== undefined
        ? readPolicyFile(o.runtimePolicySigKey, '--runtime-policy-sig-key')
        : undefined
    if (key !== undefined) {
      try {
        const text = key.toString('utf8')
        if (!text.includes('CERTIFICATE')) createPublicKey(text)
      } catch (e) {
        throw inputError(
          `--runtime-policy-sig-key ${o.runtimePolicySigKey} is not a PEM public key or certificate`,
          undefined,
          e,
        )
      }
    }
    const v = validateRuntimePolicyBytes(bytes, source, o.runtimePolicyChecksum, key)
    out.runtimePolicy = v.policy
    out.runtimePolicyKey = v.key
  }
  if (o.allowlistName !== undefined) {
    out.runtimePolicyName = o.allowlistName
    addToMask(tpmPolicy, [IMA_PCR])
  }
  if (o.runtimePolicyName !== undefined) {
    out.runtimePolicyName = o.runtimePolicyName
    addToMask(tpmPolicy, [IMA_PCR])
  }
  if (o.mbPolicy !== undefined) {
    enforcePcrs(tpmPolicy, MEASUREDBOOT_PCRS, 'measured boot')
    addToMask(tpmPolicy, MEASUREDBOOT_PCRS)
    let path = o.mbPolicy
    if (path === 'default') {
      path = ctx.cfg.mb_refstate
      if (!path)
        throw usageError(
          '--mb-policy default needs [tenant] mb_refstate in tenant.conf',
          'set mb_refstate or pass a file to --mb-policy',
        )
    }
    const text = readPolicyFile(path, '--mb-policy').toString('utf8')
    let doc: unknown
    try {
      doc = JSON.parse(text)
    } catch (e) {
      throw inputError(
        `measured boot policy ${path} is not valid JSON: ${(e as Error).message}`,
        'create one with keylime-policy create measured-boot or create_mb_refstate',
        e,
      )
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
      throw inputError(`measured boot policy ${path} must be a JSON object`)
    out.mbPolicy = pyJson(doc)
  }
  if (o.mbPolicyName !== undefined) {
    out.mbPolicyName = o.mbPolicyName
    addToMask(tpmPolicy, MEASUREDBOOT_PCRS)
  }
  ctx.out.info(`TPM PCR Mask from policy is ${formatMask(tpmPolicy.mask)}`)
  return out
}
