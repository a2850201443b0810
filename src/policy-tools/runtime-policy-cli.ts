/**
 * Runtime-policy command-line tools, as functions returning an exit code (0 ok, 1 error, 2 usage)
 * for the `keylime policy …` dispatcher and the legacy command names:
 *
 * - {@link runPolicyCreateRuntime}: `keylime policy create runtime`
 * - {@link runPolicySignRuntime}: `keylime policy sign runtime`
 * - {@link runLegacyCreatePolicy}: `keylime_create_policy`
 * - {@link runLegacySignPolicy}: `keylime_sign_runtime_policy`
 * - {@link runLegacyConvertPolicy}: `keylime_convert_runtime_policy`
 *
 * Flags follow upstream (keylime-api §4.4). RPM repository options are recognised and rejected
 * with a clear "not supported" error.
 *
 * @module
 */

import { createPrivateKey, generateKeyPairSync, type KeyObject, webcrypto } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { createRuntimePolicy, legacyAllowlistText } from './create-runtime-policy.ts'
import { ecdsaKeyId, signDsse } from '../ima/dsse.ts'
import { ImaError, isImaError } from '../ima/errors.ts'
import type { ToolContext } from '../tool-context.ts'
import { validateRuntimePolicy } from '../ima/runtime-policy.ts'

class Usage extends Error {}

function parse(argv: string[], options: ParseArgsConfig['options']): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true })
  } catch (e) {
    throw new Usage(e instanceof Error ? e.message : String(e))
  }
}

/** Each tool's `-h` text (options as upstream's argparse names them). */
const USAGE: Record<string, string> = {
  'keylime policy create runtime': `usage: keylime policy create runtime [-o OUT] [-p BASE_POLICY] [-k] [-b]
    [-a ALLOWLIST] [-e EXCLUDELIST] [-m [IMA_LIST]] [--ignored-keyrings NAME]...
    [--add-ima-signature-verification-key KEY]... [--show-legacy-allowlist] [-v]
    [--algo sha1|sha256|sha384|sha512] [--ramdisk-dir DIR] [--rootfs DIR] [-s SKIP_PATHS]
`,
  'keylime policy sign runtime': `usage: keylime policy sign runtime -r POLICY [-k KEYFILE | -p NEW_KEYPATH]
    [-b ecdsa|x509] [-o OUT] [-c CERT_OUT]
`,
  keylime_create_policy: `usage: keylime_create_policy [-B BASE_POLICY] [-k] [-b] [-a ALLOWLIST]
    [-m IMA_LIST] [-i KEYRING]... [-o OUT] [--no-hashes] [-A KEY]... [-e EXCLUDE]
`,
  keylime_convert_runtime_policy: `usage: keylime_convert_runtime_policy [-a ALLOWLIST] [-i RUNTIME_POLICY]
    [-e EXCLUDELIST] [-v KEY]... [-o OUT]
`,
  keylime_sign_runtime_policy: `usage: keylime_sign_runtime_policy -r POLICY [-k KEYFILE | -p NEW_KEYPATH]
    [-b ecdsa|x509] [-o OUT] [-c CERT_OUT]
`,
}

/** Runs tool `name` on `argv`: `-h`/`--help` prints its usage (exit 0), a usage error exits 2. */
async function run(
  ctx: ToolContext,
  name: string,
  argv: readonly string[],
  fn: () => Promise<void> | void,
): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    ctx.stdout.write(USAGE[name] ?? `usage: ${name} [options]\n`)
    return 0
  }
  try {
    await fn()
    return 0
  } catch (e) {
    if (e instanceof Usage) {
      ctx.stderr.write(`${name}: ${e.message}\n`)
      return 2
    }
    if (isImaError(e)) {
      ctx.stderr.write(`${name}: ${e.message}\n`)
      return 1
    }
    ctx.stderr.write(`${name}: ${e instanceof Error ? e.message : String(e)}\n`)
    return 1
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)
const list = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []

function abs(ctx: ToolContext, p: string | undefined): string | undefined {
  return p === undefined || p === '' ? undefined : isAbsolute(p) ? p : join(ctx.cwd, p)
}

function write(ctx: ToolContext, out: string | undefined, text: string): void {
  if (out === undefined || out === '/dev/stdout' || out === '-') {
    ctx.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
    return
  }
  try {
    writeFileSync(out, text)
  } catch (e) {
    throw new ImaError('ERR_IMA_TOOL', `cannot write ${out}`, { cause: e })
  }
}

/** Pre-processing for upstream's optional-argument `-m [path]`: a bare `-m` means the kernel list. */
function expandOptionalM(argv: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    out.push(a)
    if (
      (a === '-m' || a === '--ima-measurement-list') &&
      (i + 1 >= argv.length || (argv[i + 1] as string).startsWith('-'))
    ) {
      out.push('/sys/kernel/security/ima/ascii_runtime_measurements')
    }
  }
  return out
}

/** `keylime policy create runtime [options]`. */
export function runPolicyCreateRuntime(argv: string[], ctx: ToolContext): Promise<number> {
  return run(ctx, 'keylime policy create runtime', argv, () => {
    const { values: v } = parse(expandOptionalM(argv), {
      output: { type: 'string', short: 'o' },
      'base-policy': { type: 'string', short: 'p' },
      keyrings: { type: 'boolean', short: 'k' },
      'ima-buf': { type: 'boolean', short: 'b' },
      allowlist: { type: 'string', short: 'a' },
      excludelist: { type: 'string', short: 'e' },
      'ima-measurement-list': { type: 'string', short: 'm' },
      'ignored-keyrings': { type: 'string', multiple: true },
      'add-ima-signature-verification-key': { type: 'string', multiple: true },
      'show-legacy-allowlist': { type: 'boolean' },
      verbose: { type: 'boolean', short: 'v' },
      algo: { type: 'string' },
      'ramdisk-dir': { type: 'string' },
      rootfs: { type: 'string' },
      'skip-path': { type: 'string', short: 's' },
      'local-rpm-repo': { type: 'string' },
      'remote-rpm-repo': { type: 'string' },
      'max-workers': { type: 'string' },
    })
    if (v['local-rpm-repo'] !== undefined || v['remote-rpm-repo'] !== undefined) {
      throw new ImaError(
        'ERR_IMA_TOOL',
        'RPM repository analysis (--local-rpm-repo/--remote-rpm-repo) is not supported',
      )
    }
    const algo = str(v.algo)
    if (algo !== undefined && !['sha1', 'sha256', 'sha384', 'sha512'].includes(algo)) {
      throw new Usage(
        `--algo must be one of sha1, sha256, sha384, sha512${algo === 'sm3_256' ? ' (sm3_256 is not available in this runtime)' : ''}`,
      )
    }
    const policy = createRuntimePolicy({
      basePolicy: abs(ctx, str(v['base-policy'])),
      allowlist: abs(ctx, str(v.allowlist)),
      excludeList: abs(ctx, str(v.excludelist)),
      imaMeasurementList: abs(ctx, str(v['ima-measurement-list'])),
      keyrings: v.keyrings === true,
      imaBuf: v['ima-buf'] === true,
      ignoredKeyrings: list(v['ignored-keyrings']),
      verificationKeys: list(v['add-ima-signature-verification-key']).map(
        (p) => abs(ctx, p) as string,
      ),
      algo,
      rootfs: abs(ctx, str(v.rootfs)),
      ramdiskDir: abs(ctx, str(v['ramdisk-dir'])),
      skipPath: str(v['skip-path']),
      progress: (m) => ctx.stderr.write(`${m}\n`),
      warn: (m) => ctx.stderr.write(`keylime policy create runtime: warning: ${m}\n`),
    })
    const out = abs(ctx, str(v.output))
    write(
      ctx,
      out,
      v['show-legacy-allowlist'] === true
        ? legacyAllowlistText(policy.digests)
        : JSON.stringify(policy),
    )
  })
}

/** `keylime_create_policy` (legacy flags). */
export function runLegacyCreatePolicy(argv: string[], ctx: ToolContext): Promise<number> {
  return run(ctx, 'keylime_create_policy', argv, () => {
    const { values: v } = parse(argv, {
      'base-policy': { type: 'string', short: 'B' },
      keyrings: { type: 'boolean', short: 'k' },
      'ima-buf': { type: 'boolean', short: 'b' },
      allowlist: { type: 'string', short: 'a' },
      'ima-measurement-list': { type: 'string', short: 'm' },
      'ignored-keyrings': { type: 'string', short: 'i', multiple: true },
      output: { type: 'string', short: 'o' },
      'no-hashes': { type: 'boolean' },
      'add-ima-signature-verification-key': { type: 'string', short: 'A', multiple: true },
      exclude: { type: 'string', short: 'e' },
      'local-repo': { type: 'string', short: 'l' },
      'remote-repo': { type: 'string', short: 'r' },
    })
    if (v['local-repo'] !== undefined || v['remote-repo'] !== undefined) {
      throw new ImaError('ERR_IMA_TOOL', 'RPM repository analysis (-l/-r) is not supported')
    }
    const policy = createRuntimePolicy({
      basePolicy: abs(ctx, str(v['base-policy'])),
      allowlist: abs(ctx, str(v.allowlist)),
      excludeList: abs(ctx, str(v.exclude)),
      imaMeasurementList: abs(
        ctx,
        str(v['ima-measurement-list']) ?? '/sys/kernel/security/ima/ascii_runtime_measurements',
      ),
      keyrings: v.keyrings === true,
      imaBuf: v['ima-buf'] === true,
      ignoredKeyrings: list(v['ignored-keyrings']),
      verificationKeys: list(v['add-ima-signature-verification-key']).map(
        (p) => abs(ctx, p) as string,
      ),
    })
    if (v['no-hashes'] === true) policy.digests = {}
    write(ctx, abs(ctx, str(v.output)), JSON.stringify(policy))
  })
}

/** Upstream's `nargs="+"` for `-v`: `-v k1 k2` becomes `-v k1 -v k2`. */
function expandVerificationKeys(argv: string[]): string[] {
  const out: string[] = []
  let inKeys = false
  for (const a of argv) {
    if (a === '-v' || a === '--verification_keys') inKeys = true
    else if (a.startsWith('-')) inKeys = false
    else if (inKeys && out[out.length - 1] !== '-v') out.push('-v')
    out.push(a)
  }
  return out
}

/**
 * `keylime_convert_runtime_policy -a ALLOWLIST | -i POLICY [-e EXCLUDES] [-v KEY…] -o OUT`: a
 * legacy allowlist (flat or JSON) or an older runtime policy to the current runtime-policy format.
 */
export function runLegacyConvertPolicy(argv: string[], ctx: ToolContext): Promise<number> {
  return run(ctx, 'keylime_convert_runtime_policy', argv, () => {
    const { values: v } = parse(expandVerificationKeys(argv), {
      allowlist: { type: 'string', short: 'a' },
      runtime_policy: { type: 'string', short: 'i' },
      excludelist: { type: 'string', short: 'e' },
      verification_keys: { type: 'string', short: 'v', multiple: true },
      output_file: { type: 'string', short: 'o' },
    })
    const allowlist = abs(ctx, str(v.allowlist))
    const basePolicy = abs(ctx, str(v.runtime_policy))
    if (allowlist !== undefined && basePolicy !== undefined)
      throw new Usage('give either --allowlist or --runtime_policy, not both')
    if (allowlist === undefined && basePolicy === undefined)
      throw new Usage('either --allowlist (-a) or --runtime_policy (-i) is required')
    const out = abs(ctx, str(v.output_file))
    if (out === undefined) throw new Usage('an output file (-o, --output_file) is required')
    const policy = createRuntimePolicy({
      allowlist,
      basePolicy,
      excludeList: abs(ctx, str(v.excludelist)),
      verificationKeys: list(v.verification_keys).map((p) => abs(ctx, p) as string),
    })
    write(ctx, out, JSON.stringify(policy))
    ctx.stderr.write(`wrote the runtime policy to ${out}\n`)
  })
}

function loadEcKey(path: string): KeyObject {
  let pem: string
  try {
    pem = readFileSync(path, 'utf8')
  } catch (e) {
    throw new ImaError('ERR_IMA_TOOL', `the specified key '${path}' does not exist`, { cause: e })
  }
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch (e) {
    throw new ImaError('ERR_IMA_TOOL', `cannot load private key '${path}'`, { cause: e })
  }
  if (key.asymmetricKeyType !== 'ec')
    throw new ImaError('ERR_IMA_TOOL', 'only elliptic curve keys are supported')
  return key
}

async function selfSignedCert(priv: KeyObject): Promise<string> {
  const x509 = await import('@peculiar/x509')
  const pub = (await import('node:crypto')).createPublicKey(priv)
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
  const keys = {
    privateKey: await webcrypto.subtle.importKey(
      'pkcs8',
      priv.export({ type: 'pkcs8', format: 'der' }),
      alg,
      false,
      ['sign'],
    ),
    publicKey: await webcrypto.subtle.importKey(
      'spki',
      pub.export({ type: 'spki', format: 'der' }),
      alg,
      true,
      ['verify'],
    ),
  }
  const day = 86_400_000
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: 'CN=dsse_lib',
      notBefore: new Date(Date.now() - day),
      notAfter: new Date(Date.now() + 30 * day),
      keys,
      signingAlgorithm: alg,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'dsse_lib' }]),
        new x509.BasicConstraintsExtension(false, undefined, true),
      ],
    },
    webcrypto as unknown as Crypto,
  )
  return cert.toString('pem')
}

interface SignOptions {
  output?: string
  policy?: string
  keyfile?: string
  keypath?: string
  backend: string
  certOut?: string
}

async function signPolicy(ctx: ToolContext, o: SignOptions): Promise<void> {
  if (o.policy === undefined) throw new Usage('the runtime policy (-r) is required')
  if (o.backend !== 'ecdsa' && o.backend !== 'x509')
    throw new Usage('backend must be ecdsa or x509')
  if (o.keyfile !== undefined && o.keypath !== undefined)
    throw new ImaError('ERR_IMA_TOOL', 'only one of keyfile or keypath must be specified at once')
  if (o.backend === 'x509' && o.certOut === undefined)
    throw new ImaError('ERR_IMA_TOOL', 'x509 backend and no certificate output file specified')
  let policy: unknown
  try {
    policy = JSON.parse(readFileSync(o.policy, 'utf8'))
  } catch (e) {
    throw new ImaError('ERR_IMA_TOOL', `unable to read the runtime policy '${o.policy}'`, {
      cause: e,
    })
  }
  validateRuntimePolicy(policy)
  let priv: KeyObject
  if (o.keyfile !== undefined) priv = loadEcKey(o.keyfile)
  else {
    priv = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    const out = o.keypath ?? join(ctx.cwd, 'keylime-ecdsa-key.pem')
    writeFileSync(out, priv.export({ type: 'sec1', format: 'pem' }), { mode: 0o600 })
  }
  const payload = Buffer.from(JSON.stringify(policy), 'utf8')
  let keyid: string
  if (o.backend === 'ecdsa') {
    keyid = ecdsaKeyId((await import('node:crypto')).createPublicKey(priv))
  } else {
    const pem = await selfSignedCert(priv)
    writeFileSync(o.certOut as string, pem)
    keyid = Buffer.from(pem).toString('base64')
  }
  write(ctx, o.output, signDsse(payload, priv, keyid))
}

/** `keylime policy sign runtime -r POLICY [-o OUT] [-k KEY | -p NEWKEY] [-b ecdsa|x509] [-c CERT]`. */
export function runPolicySignRuntime(argv: string[], ctx: ToolContext): Promise<number> {
  return run(ctx, 'keylime policy sign runtime', argv, async () => {
    const { values: v } = parse(argv, {
      output: { type: 'string', short: 'o' },
      'runtime-policy': { type: 'string', short: 'r' },
      keyfile: { type: 'string', short: 'k' },
      keypath: { type: 'string', short: 'p' },
      backend: { type: 'string', short: 'b' },
      'cert-outfile': { type: 'string', short: 'c' },
    })
    await signPolicy(ctx, {
      output: abs(ctx, str(v.output)),
      policy: abs(ctx, str(v['runtime-policy'])),
      keyfile: abs(ctx, str(v.keyfile)),
      keypath: abs(ctx, str(v.keypath)),
      backend: (str(v.backend) ?? 'ecdsa').toLowerCase(),
      certOut: abs(ctx, str(v['cert-outfile'])),
    })
  })
}

/** `keylime_sign_runtime_policy -r POLICY [-o OUT] [-k KEY | -p NEWKEY] [-b ecdsa|x509] [-c CERT]`. */
export function runLegacySignPolicy(argv: string[], ctx: ToolContext): Promise<number> {
  return run(ctx, 'keylime_sign_runtime_policy', argv, async () => {
    const { values: v } = parse(argv, {
      runtime_policy: { type: 'string', short: 'r' },
      keyfile: { type: 'string', short: 'k' },
      keypath: { type: 'string', short: 'p' },
      backend: { type: 'string', short: 'b' },
      output_file: { type: 'string', short: 'o' },
      certificate_output_file: { type: 'string', short: 'c' },
    })
    const out = abs(ctx, str(v.output_file)) ?? join(ctx.cwd, 'runtime_policy.json.signed')
    await signPolicy(ctx, {
      output: out,
      policy: abs(ctx, str(v.runtime_policy)),
      keyfile: abs(ctx, str(v.keyfile)),
      keypath: abs(ctx, str(v.keypath)),
      backend: (str(v.backend) ?? 'ecdsa').toLowerCase(),
      certOut: abs(ctx, str(v.certificate_output_file)),
    })
  })
}
