/**
 * `--cert <dir|default>`: a certificate package for the agent from the keylime CA (upstream
 * `Tenant.init_add`, `ca_util.cmd_certpkg`; wire-formats.md §4 "tenant --cert payload").
 *
 * The CA in the directory (`default` = `$KEYLIME_DIR/ca`, as `keylime_ca` uses) is created if
 * missing; a certificate `<uuid>` and one `RevocationNotifier` are issued if missing. The zip holds
 * `<uuid>-{cert.crt,private.pem,public.pem}`, `cacert.crt`, `cacrl.der`, `cacrl.pem`,
 * `RevocationNotifier-cert.crt` and the `--include` files; the RevocationNotifier private key goes
 * to the verifier as `revocation_key`, and `{cert_serial, subject}` becomes the agent metadata.
 *
 * @module
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { unzipSync, zipSync } from 'fflate'
import { CertAuthority } from '../ca/cert-authority.ts'
import { type CaSettings, resolveCaSettings } from '../ca/ca-settings.ts'
import { loadCaConfig } from '../config/load-ca-config.ts'
import { readZip, ZipError } from '../protocol/read-zip.ts'
import { inputError, TenantError } from './errors.ts'
import type { TenantContext } from './tenant-context.ts'

/** Name of the certificate whose key signs revocation notices. */
export const REVOCATION_CERT_NAME = 'RevocationNotifier'

/** The package and what the verifier receives with it. */
export interface CertPackageResult {
  /** The zip (holds the agent's private key: never written to disk or printed). */
  zip: Uint8Array
  /** PEM private key of the RevocationNotifier (`revocation_key`). */
  revocationKey: string
  metadata: { cert_serial: number; subject: string }
  /** The CA directory used. */
  caDir: string
}

function zipReason(e: unknown): string {
  return e instanceof ZipError ? `: ${e.message}` : ''
}

/** Files `--include` adds: a directory's regular files (not recursive), or a file; a `.zip` merges. */
export function readIncludes(path: string): Record<string, Uint8Array> {
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(path)
  } catch (e) {
    throw inputError(
      `--include ${path} does not exist`,
      'give a directory (or a file) of extra files',
      e,
    )
  }
  const files: Record<string, Uint8Array> = {}
  const read = (p: string) => {
    try {
      return new Uint8Array(readFileSync(p))
    } catch (e) {
      throw inputError(`cannot read --include file ${p}`, undefined, e)
    }
  }
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      const p = join(path, name)
      if (statSync(p).isFile()) files[name] = read(p)
    }
  } else if (path.toLowerCase().endsWith('.zip')) {
    const zip = read(path)
    try {
      for (const e of readZip(zip)) if (!e.isDirectory) files[e.name] = e.data
    } catch (e) {
      throw inputError(`--include ${path} is not a valid zip file${zipReason(e)}`, undefined, e)
    }
  } else {
    files[basename(path)] = read(path)
  }
  return files
}

function caPassword(ctx: TenantContext, settings: CaSettings): string {
  const pw = settings.password
  if (pw === 'default') {
    ctx.out.warn(
      "using the 'default' password option of ca.conf for the CA keystore (set [ca] password or KEYLIME_CA_PASSWORD)",
    )
  }
  if (!pw)
    throw new TenantError('ERR_TENANT_CONFIG', 'You must specify a password!', {
      hint: 'set [ca] password',
    })
  return pw
}

/**
 * Builds the package for `ctx.opts.agentUuid` from the CA in `dirOption`.
 *
 * @throws {TenantError} `ERR_TENANT_CONFIG` for CA problems (wrong password, unreadable keystore),
 *   `ERR_TENANT_INPUT` for `--include` problems.
 */
export async function buildCertPackage(
  ctx: TenantContext,
  dirOption: string,
  include: string | undefined,
): Promise<CertPackageResult> {
  const caDir = dirOption === 'default' ? join(ctx.keylimeDir, 'ca') : resolve(dirOption)
  const extra = include !== undefined ? readIncludes(include) : {}
  const settings = resolveCaSettings(
    loadCaConfig({ env: ctx.env, warn: (m) => ctx.out.warn(m) }).ca as Partial<CaSettings>,
  )
  const password = caPassword(ctx, settings)
  const uuid = ctx.opts.agentUuid
  let ca: CertAuthority
  try {
    if (!(await CertAuthority.exists(caDir))) {
      ctx.out.warn(`CA directory ${caDir} does not exist. Creating...`)
      ca = await CertAuthority.init(caDir, settings, password)
    } else {
      ca = await CertAuthority.open(caDir, settings, password)
    }
    if (!(await ca.hasCert(uuid))) await ca.createCert(uuid)
    if (!(await ca.hasCert(REVOCATION_CERT_NAME))) await ca.createCert(REVOCATION_CERT_NAME)
  } catch (e) {
    throw new TenantError(
      'ERR_TENANT_CONFIG',
      `Error reading the keystore from ${caDir}: ${(e as Error).message}`,
      {
        hint: 'check [ca] password in ca.conf (or KEYLIME_CA_PASSWORD) and the --cert directory',
        cause: e,
      },
    )
  }
  const pkg = await ca.certPackage(uuid)
  const rev = unzipSync((await ca.certPackage(REVOCATION_CERT_NAME)).zip)
  const revKey = rev[`${REVOCATION_CERT_NAME}-private.pem`]
  const revCert = rev[`${REVOCATION_CERT_NAME}-cert.crt`]
  if (!revKey || !revCert)
    throw new TenantError(
      'ERR_TENANT_CONFIG',
      `the ${REVOCATION_CERT_NAME} package in ${caDir} is incomplete`,
    )
  const files: Record<string, Uint8Array> = { ...unzipSync(pkg.zip) }
  files[`${REVOCATION_CERT_NAME}-cert.crt`] = revCert
  for (const [name, data] of Object.entries(extra)) files[name] = data
  // Stored, not deflated, as upstream (ZIP_STORED: extraction in a small tmpfs).
  const zip = zipSync(files, { level: 0 })
  try {
    readZip(zip) // what the agent will check: an --include name must not collide with ours
  } catch (e) {
    throw inputError(
      `the certificate package with --include is not extractable${zipReason(e)}`,
      undefined,
      e,
    )
  }
  return {
    zip,
    revocationKey: Buffer.from(revKey).toString('utf8'),
    metadata: { cert_serial: pkg.serial, subject: pkg.subject },
    caDir,
  }
}
