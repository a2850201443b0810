/**
 * The `tls_dir = generate` bootstrap (`keylime/web_util.py` `init_tls_dir`): at first start create
 * `<keylimeDir>/cv_ca/` (mode 0700) holding a CA and the server and client certificates the
 * verifier, registrar and tenant use for mTLS. Existing files are reused; a missing server or
 * client certificate (or key) is re-issued by the existing CA.
 *
 * Two processes starting at once are safe: all work happens under the directory's exclusive lock
 * ({@link withDirLock}) and every file is written atomically, `cacert.crt` and each `*-cert.crt`
 * last, so their presence marks complete material.
 *
 * @module
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { X509Crl } from '@peculiar/x509'
import {
  CA_FILES,
  caPath,
  certFileNames,
  ensureCaDir,
  fileExists,
  readBounded,
} from './ca-files.ts'
import type { CaSettings } from './ca-settings.ts'
import { CertAuthority } from './cert-authority.ts'
import { tlsAcceptsCrl } from './client-crl.ts'
import { getSanEntries } from './san-entries.ts'
import { type DirLockOptions, withDirLock } from './with-dir-lock.ts'
import { getLogger } from '../log/logger.ts'

const log = getLogger('ca')

/** Inputs of {@link ensureCvCa}. */
export interface EnsureCvCaOptions {
  /** `KEYLIME_DIR`. */
  keylimeDir: string
  /** The `[ca]` settings (`cfg.ca`). */
  settings: CaSettings
  /** CA password; defaults to `settings.password` (services use the literal, even `default`). */
  password?: string
  /** Directory name under `keylimeDir`: `cv_ca` (verifier, default) or `reg_ca` (registrar). */
  dirName?: string
  /**
   * The bind address `ip` of each component serving this certificate (added as SANs unless
   * unspecified).
   */
  ip?: string | readonly string[]
  /** `cert_subject_alternative_names` (comma list). */
  subjectAltNames?: string
  /** `server_key_password`: encrypts `server-private.pem` when non-empty. */
  serverKeyPassword?: string
  /** `client_key_password`: encrypts `client-private.pem` when non-empty. */
  clientKeyPassword?: string
  /** Also create the client certificate (verifier: yes; registrar's `reg_ca`: no). Default true. */
  withClient?: boolean
  /** Host name for the SANs (defaults to `sanHostname()`: none inside a container). */
  hostname?: string
  /** Clock for new certificates. */
  now?: Date
  /** Lock timing. */
  lock?: DirLockOptions
}

/** What {@link ensureCvCa} did. */
export interface EnsureCvCaResult {
  /** Absolute CA directory. */
  dir: string
  /** Which parts were created now (false = reused). */
  created: { ca: boolean; server: boolean; client: boolean }
}

async function leafPresent(dir: string, name: string): Promise<boolean> {
  const f = certFileNames(name)
  return (await fileExists(caPath(dir, f.cert))) && (await fileExists(caPath(dir, f.privateKey)))
}

/** A CRL expiring within this many days is renewed at start. */
const CRL_RENEW_DAYS = 30

/**
 * Renews `cacrl.der`/`cacrl.pem` when missing, unreadable, not strict DER (written by keylime-ts
 * before step 1 with revoked entries) or about to expire: the admin TLS ports
 * enforce the CRL (`client_crl`), and TLS refuses every client of a CA whose CRL has expired
 * (upstream writes CRLs that expire at once). Without the CA password it only warns.
 */
async function refreshStaleCrl(
  dir: string,
  settings: CaSettings,
  password: string,
  now: Date,
  open: CertAuthority | undefined,
): Promise<void> {
  try {
    const der = new Uint8Array(await readBounded(caPath(dir, CA_FILES.crlDer)))
    const nextUpdate = new X509Crl(der).nextUpdate
    const fresh =
      nextUpdate !== undefined && nextUpdate.getTime() - now.getTime() > CRL_RENEW_DAYS * 864e5
    if (fresh && tlsAcceptsCrl(der)) return
  } catch {
    // missing or unreadable: renew
  }
  try {
    const ca = open ?? (await CertAuthority.open(dir, settings, password))
    await ca.regenerateCrl(now)
    log.info('renewed the CA revocation list', { dir })
  } catch (err) {
    log.warn('cannot renew the CA revocation list', {
      dir,
      error: err instanceof Error ? err.message : String(err),
    })
  }
}

/**
 * Creates or reuses `<keylimeDir>/cv_ca` with `cacert.crt`, `ca-public.pem`, `cacrl.der`,
 * `cacrl.pem`, `private.yml`, `server-{cert.crt,private.pem,public.pem}` and
 * `client-{cert.crt,private.pem,public.pem}`.
 *
 * @throws {CaError} `ERR_CA_BAD_PASSWORD` if a leaf must be re-issued and the password is wrong;
 *   `ERR_CA_LOCK_TIMEOUT` if another process holds the lock too long.
 */
export async function ensureCvCa(opts: EnsureCvCaOptions): Promise<EnsureCvCaResult> {
  const dir = join(opts.keylimeDir, opts.dirName ?? 'cv_ca')
  const password = opts.password ?? opts.settings.password
  const withClient = opts.withClient ?? true
  await mkdir(opts.keylimeDir, { recursive: true })
  await ensureCaDir(dir)
  const created = { ca: false, server: false, client: false }
  await withDirLock(
    dir,
    async () => {
      const now = opts.now ?? new Date()
      let ca: CertAuthority | undefined
      if (await fileExists(caPath(dir, CA_FILES.caCert))) {
        log.info('existing CA certificate found, not generating a new one', { dir })
      } else {
        log.info('generating new CA, keys, and certificates', { dir })
        log.info(`use keylime_ca -d ${dir} to manage this CA`)
        ca = await CertAuthority.init(dir, opts.settings, password, now)
        created.ca = true
      }
      if (created.ca || !(await leafPresent(dir, 'server'))) {
        ca ??= await CertAuthority.open(dir, opts.settings, password)
        const san = getSanEntries({
          bindAddress: opts.ip,
          extra: opts.subjectAltNames,
          hostname: opts.hostname,
        })
        log.info('generating server certificate', {
          dns: san.dns.join(','),
          ips: san.ips.join(','),
        })
        await ca.createCert('server', {
          kind: 'server',
          sanDns: san.dns,
          sanIps: san.ips,
          keyPassword: opts.serverKeyPassword,
          now,
        })
        created.server = true
      }
      if (withClient && (created.ca || !(await leafPresent(dir, 'client')))) {
        ca ??= await CertAuthority.open(dir, opts.settings, password)
        await ca.createCert('client', { kind: 'client', keyPassword: opts.clientKeyPassword, now })
        created.client = true
      }
      if (!created.ca) await refreshStaleCrl(dir, opts.settings, password, now, ca)
    },
    opts.lock,
  )
  return { dir, created }
}
