/**
 * A Keylime certificate authority living in a directory, with upstream's layout
 * (`keylime/ca_util.py`):
 *
 * | file | content |
 * |---|---|
 * | `cacert.crt` | CA certificate (PEM) |
 * | `ca-public.pem` | CA public key |
 * | `cacrl.der`, `cacrl.pem` | the CRL |
 * | `private.yml` | encrypted keystore: CA key, `lastserial`, `revoked_keys`, per-name keys |
 * | `<name>-cert.crt`, `<name>-private.pem`, `<name>-public.pem` | issued certificates |
 * | `<name>-pkg.zip` | certificate packages |
 *
 * The class does no locking itself; callers that may race with another process wrap mutations in
 * {@link withDirLock} (the cv_ca bootstrap and the `keylime_ca` command do).
 *
 * @module
 */
import { readdir, rm } from 'node:fs/promises'
import { X509Certificate, X509Crl } from '@peculiar/x509'
import { zipSync } from 'fflate'
import {
  CA_FILES,
  PUBLIC_FILE_MODE,
  SECRET_FILE_MODE,
  caPath,
  certFileNames,
  ensureCaDir,
  fileExists,
  readBounded,
  readTextBounded,
  writeFileAtomic,
} from './ca-files.ts'
import type { CaSettings } from './ca-settings.ts'
import { createCaCertificate } from './create-ca-certificate.ts'
import { createCrl, type RevokedEntry } from './create-crl.ts'
import { CaError } from './errors.ts'
import { type CertKind, issueCertificate } from './issue-certificate.ts'
import {
  type CaPrivateData,
  emptyPrivateData,
  sealPrivateYml,
  unsealPrivateYml,
} from './private-yml.ts'
import {
  decryptPrivateKeyPem,
  encryptPrivateKeyPem,
  generateRsaKeyPair,
  importRsaSigningKey,
  publicPemOf,
  toPem,
} from './rsa-keys.ts'
import { getLogger } from '../log/logger.ts'

const log = getLogger('ca')

/** Names usable for issued certificates (they become file names and keystore keys). */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/
/** Keystore keys that are not certificate names. */
const RESERVED_NAMES = new Set([
  'ca',
  'lastserial',
  'revoked_keys',
  'revocation_dates',
  'priv',
  'salt',
])

/**
 * Checks a certificate name (`-n`): 1–64 characters of `[A-Za-z0-9._@-]`, not starting with a
 * dot or dash, and not a keystore field.
 *
 * @throws {CaError} `ERR_CA_INVALID_INPUT`
 */
export function assertCertName(name: string): void {
  if (!NAME_RE.test(name) || RESERVED_NAMES.has(name)) {
    throw new CaError(
      'ERR_CA_INVALID_INPUT',
      `invalid certificate name ${JSON.stringify(name.slice(0, 80))}`,
    )
  }
}

/** Options of {@link CertAuthority.createCert}. */
export interface CreateCertOptions {
  /** `server` adds EKU serverAuth, `client` clientAuth; `generic` (default) none, as upstream. */
  kind?: CertKind
  sanDns?: string[]
  sanIps?: string[]
  /** Encrypts `<name>-private.pem` (and the keystore copy) with this password when non-empty. */
  keyPassword?: string
  /** Start of validity; defaults to the clock. */
  now?: Date
}

/** Result of {@link CertAuthority.createCert}. */
export interface IssuedCert {
  name: string
  serial: number
  certPem: string
  /** `<name>-cert.crt` path. */
  certPath: string
}

/** Result of {@link CertAuthority.certPackage}. */
export interface CertPackage {
  /**
   * The package with the UNPROTECTED private key, in memory only (what upstream's tenant sends to
   * an agent inside the encrypted payload). Never write it to disk unless `insecure`.
   */
  zip: Uint8Array
  /** Path of the `<name>-pkg.zip` written to the CA directory. */
  path: string
  serial: number
  /** RFC 4514-style subject string. */
  subject: string
}

function serialOf(cert: X509Certificate): number {
  const n = Number.parseInt(cert.serialNumber, 16)
  if (!Number.isSafeInteger(n))
    throw new CaError('ERR_CA_MALFORMED', 'certificate serial is not a small integer')
  return n
}

function parseCertPem(pem: string, path: string): X509Certificate {
  try {
    return new X509Certificate(pem)
  } catch (cause) {
    throw new CaError('ERR_CA_MALFORMED', `not a PEM certificate: ${path}`, { cause })
  }
}

/** A CA loaded from (or initialised in) a directory, unlocked with its password. */
export class CertAuthority {
  /** The CA directory. */
  readonly dir: string
  /** The `[ca]` settings used for new certificates. */
  readonly settings: CaSettings
  /** The CA certificate. */
  readonly caCert: X509Certificate
  readonly #password: string
  readonly #salt: string
  #data: CaPrivateData
  #caKey: CryptoKey | undefined

  private constructor(
    dir: string,
    settings: CaSettings,
    caCert: X509Certificate,
    password: string,
    salt: string,
    data: CaPrivateData,
  ) {
    this.dir = dir
    this.settings = settings
    this.caCert = caCert
    this.#password = password
    this.#salt = salt
    this.#data = data
  }

  /** True when `dir` holds an initialised CA (`cacert.crt` and `private.yml`). */
  static async exists(dir: string): Promise<boolean> {
    return (
      (await fileExists(caPath(dir, CA_FILES.caCert))) &&
      (await fileExists(caPath(dir, CA_FILES.privateYml)))
    )
  }

  /** Whether `dir` holds any part of a CA (`cacert.crt` or `private.yml`), complete or not. */
  static async hasAnyTrace(dir: string): Promise<boolean> {
    return (
      (await fileExists(caPath(dir, CA_FILES.caCert))) ||
      (await fileExists(caPath(dir, CA_FILES.privateYml)))
    )
  }

  /**
   * Creates a new CA in `dir` (`keylime_ca -c init`): removes old `*.pem`, `*.crt`, `*.zip`,
   * `*.der` and `private.yml` as upstream does, then writes the CA certificate, public key, an
   * empty CRL and the keystore (`lastserial` 1). The directory is made mode 0700.
   */
  static async init(
    dir: string,
    settings: CaSettings,
    password: string,
    now: Date = new Date(),
  ): Promise<CertAuthority> {
    await ensureCaDir(dir)
    for (const f of await readdir(dir)) {
      if (/\.(pem|crt|zip|der)$/.test(f) || f === CA_FILES.privateYml)
        await rm(caPath(dir, f), { force: true })
    }
    const kp = await generateRsaKeyPair(settings.cert_bits)
    const caCert = await createCaCertificate({ settings, keys: kp.keys, now })
    const data = emptyPrivateData()
    data.ca = kp.privatePem
    data.lastserial = 1
    const ca = new CertAuthority(dir, settings, caCert, password, '', data)
    ca.#caKey = kp.keys.privateKey
    // Keystore first and cacert.crt last: cacert.crt's presence marks a complete CA.
    await ca.#saveKeystore()
    await writeFileAtomic(caPath(dir, CA_FILES.caPublic), kp.publicPem, PUBLIC_FILE_MODE)
    await ca.#writeCrl(now)
    await writeFileAtomic(caPath(dir, CA_FILES.caCert), caCert.toString('pem'), PUBLIC_FILE_MODE)
    log.info('CA certificate created', { dir })
    return ca
  }

  /**
   * Opens an existing CA.
   *
   * @throws {CaError} `ERR_CA_NOT_INITIALIZED` when `cacert.crt` or `private.yml` is missing;
   *   `ERR_CA_BAD_PASSWORD` when the password does not decrypt `private.yml`.
   */
  static async open(dir: string, settings: CaSettings, password: string): Promise<CertAuthority> {
    if (!(await CertAuthority.exists(dir))) {
      throw new CaError(
        'ERR_CA_NOT_INITIALIZED',
        `no CA in ${dir} (run keylime_ca -c init -d ${dir})`,
      )
    }
    const certPath = caPath(dir, CA_FILES.caCert)
    const caCert = parseCertPem(await readTextBounded(certPath), certPath)
    const { data, salt } = await unsealPrivateYml(
      await readTextBounded(caPath(dir, CA_FILES.privateYml)),
      password,
    )
    if (!data.ca) throw new CaError('ERR_CA_MALFORMED', `private.yml in ${dir} holds no CA key`)
    return new CertAuthority(dir, settings, caCert, password, salt, data)
  }

  /** The last serial number used. */
  get lastSerial(): number {
    return this.#data.lastserial
  }

  /** Revoked serials (decimal strings). */
  get revokedSerials(): readonly string[] {
    return this.#data.revokedKeys
  }

  /** True when `<name>-cert.crt` and `<name>-private.pem` exist. */
  async hasCert(name: string): Promise<boolean> {
    assertCertName(name)
    const f = certFileNames(name)
    return (
      (await fileExists(caPath(this.dir, f.cert))) &&
      (await fileExists(caPath(this.dir, f.privateKey)))
    )
  }

  /** Reads `<name>-cert.crt`. */
  async readCert(name: string): Promise<X509Certificate> {
    assertCertName(name)
    const path = caPath(this.dir, certFileNames(name).cert)
    return parseCertPem(await readTextBounded(path), path)
  }

  async #signingKey(): Promise<CryptoKey> {
    this.#caKey ??= await importRsaSigningKey(this.#data.ca)
    return this.#caKey
  }

  async #saveKeystore(): Promise<void> {
    const text = await sealPrivateYml(this.#data, this.#password, this.#salt || undefined)
    await writeFileAtomic(caPath(this.dir, CA_FILES.privateYml), text, SECRET_FILE_MODE)
  }

  async #writeCrl(now: Date): Promise<Uint8Array> {
    const revoked: RevokedEntry[] = this.#data.revokedKeys.map((serial) => {
      const iso = this.#data.revocationDates[serial]
      const date = iso ? new Date(iso) : now
      return { serial, date: Number.isNaN(date.getTime()) ? now : date }
    })
    const crl = await createCrl({
      caCert: this.caCert,
      caKey: await this.#signingKey(),
      revoked,
      now,
      validityDays: this.settings.cert_lifetime,
    })
    const der = new Uint8Array(crl.rawData)
    await writeFileAtomic(caPath(this.dir, CA_FILES.crlDer), der, PUBLIC_FILE_MODE)
    // OpenSSL and Python `cryptography` label CRLs `X509 CRL` (@peculiar/x509 writes `CRL`).
    await writeFileAtomic(
      caPath(this.dir, CA_FILES.crlPem),
      toPem(der, 'X509 CRL'),
      PUBLIC_FILE_MODE,
    )
    return der
  }

  /**
   * Issues `<name>` (`keylime_ca -c create`): a new RSA key, a certificate with serial
   * `lastserial + 1`, and the files `<name>-cert.crt`, `<name>-private.pem` (0600),
   * `<name>-public.pem`. An existing name is re-issued with a new serial, as upstream does.
   */
  async createCert(name: string, opts: CreateCertOptions = {}): Promise<IssuedCert> {
    assertCertName(name)
    const now = opts.now ?? new Date()
    const kp = await generateRsaKeyPair(this.settings.cert_bits)
    const serial = this.#data.lastserial + 1
    const cert = await issueCertificate({
      settings: this.settings,
      caCert: this.caCert,
      caKey: await this.#signingKey(),
      publicKey: kp.keys.publicKey,
      name,
      serial,
      kind: opts.kind ?? 'generic',
      sanDns: opts.sanDns,
      sanIps: opts.sanIps,
      now,
    })
    const keyPem = opts.keyPassword
      ? encryptPrivateKeyPem(kp.privatePem, opts.keyPassword)
      : kp.privatePem
    this.#data.keys[name] = keyPem
    this.#data.lastserial = serial
    await this.#saveKeystore()
    const f = certFileNames(name)
    const certPem = cert.toString('pem')
    await writeFileAtomic(caPath(this.dir, f.privateKey), keyPem, SECRET_FILE_MODE)
    await writeFileAtomic(caPath(this.dir, f.publicKey), kp.publicPem, PUBLIC_FILE_MODE)
    // The certificate last: with the key, its presence marks a complete leaf.
    await writeFileAtomic(caPath(this.dir, f.cert), certPem, PUBLIC_FILE_MODE)
    log.info('created certificate', { name, serial, dir: this.dir })
    return { name, serial, certPem, certPath: caPath(this.dir, f.cert) }
  }

  /**
   * Builds the certificate package of `<name>` (`keylime_ca -c pkg`): a stored (uncompressed)
   * zip of `<name>-public.pem`, `<name>-cert.crt`, `<name>-private.pem`, `cacert.crt`,
   * `cacrl.der`, `cacrl.pem`, written as `<name>-pkg.zip` (mode 0600).
   *
   * The written file's private key is protected: `<name>-private.pem` as created if it is
   * encrypted, otherwise encrypted with the CA password (upstream writes the on-disk key file,
   * which `keylime_ca -c create` leaves unencrypted). With `insecure` the file holds the
   * unprotected key. The returned `zip` always holds the unprotected key (for payloads).
   */
  async certPackage(name: string, opts: { insecure?: boolean } = {}): Promise<CertPackage> {
    assertCertName(name)
    const f = certFileNames(name)
    const read = (file: string) =>
      readBounded(caPath(this.dir, file), `create it with keylime_ca -c create -n ${name}`)
    const [cacert, pub, certBuf, crlDer, crlPem, onDiskKey] = await Promise.all([
      read(CA_FILES.caCert),
      read(f.publicKey),
      read(f.cert),
      read(CA_FILES.crlDer),
      read(CA_FILES.crlPem),
      read(f.privateKey),
    ])
    const stored = this.#data.keys[name]
    if (stored === undefined)
      throw new CaError('ERR_CA_UNKNOWN_NAME', `private.yml holds no key for ${name}`)
    const cert = parseCertPem(certBuf.toString('utf8'), f.cert)
    const entries = (key: string | Uint8Array) => ({
      [f.publicKey]: new Uint8Array(pub),
      [f.cert]: new Uint8Array(certBuf),
      [f.privateKey]: typeof key === 'string' ? new TextEncoder().encode(key) : key,
      [CA_FILES.caCert]: new Uint8Array(cacert),
      [CA_FILES.crlDer]: new Uint8Array(crlDer),
      [CA_FILES.crlPem]: new Uint8Array(crlPem),
    })
    // Stored, not deflated (upstream: "no compression to avoid extraction errors in tmpfs").
    const zip = zipSync(entries(stored), { level: 0 })
    let onDisk: Uint8Array
    if (opts.insecure) {
      log.warn('unprotected private key in cert package being written to disk', { name })
      onDisk = zip
    } else {
      const diskKeyText = onDiskKey.toString('utf8')
      const protectedKey = diskKeyText.includes('ENCRYPTED')
        ? diskKeyText
        : encryptPrivateKeyPem(stored, this.#password)
      onDisk = zipSync(entries(protectedKey), { level: 0 })
    }
    const path = caPath(this.dir, f.pkg)
    await writeFileAtomic(path, onDisk, SECRET_FILE_MODE)
    log.info('created cert package', { name, path })
    return { zip, path, serial: serialOf(cert), subject: cert.subject }
  }

  /**
   * Revokes a certificate by name (serial read from `<name>-cert.crt`) or by serial
   * (`keylime_ca -c revoke`), records it in `private.yml` and rewrites `cacrl.der`/`cacrl.pem`.
   * Revoking an already revoked serial only regenerates the CRL.
   *
   * @returns the new CRL, DER.
   */
  async revoke(
    target: { name?: string; serial?: number | string },
    now: Date = new Date(),
  ): Promise<Uint8Array> {
    if ((target.name === undefined) === (target.serial === undefined)) {
      throw new CaError(
        'ERR_CA_INVALID_INPUT',
        'give exactly one of a certificate name or a serial to revoke',
      )
    }
    let serial: string
    if (target.name !== undefined) {
      assertCertName(target.name)
      const path = caPath(this.dir, certFileNames(target.name).cert)
      if (!(await fileExists(path)))
        throw new CaError(
          'ERR_CA_UNKNOWN_NAME',
          `no certificate named ${target.name} in ${this.dir}`,
        )
      serial = String(serialOf(await this.readCert(target.name)))
    } else {
      const s = String(target.serial).trim()
      if (!/^[1-9][0-9]{0,40}$/.test(s))
        throw new CaError('ERR_CA_INVALID_INPUT', 'serial must be a positive decimal number')
      serial = s
    }
    if (!this.#data.revokedKeys.includes(serial)) {
      this.#data.revokedKeys.push(serial)
      this.#data.revocationDates[serial] = now.toISOString()
    }
    const der = await this.#writeCrl(now)
    await this.#saveKeystore()
    log.info('revoked certificate', { serial, dir: this.dir })
    return der
  }

  /** Regenerates `cacrl.der`/`cacrl.pem` (e.g. before nextUpdate passes). */
  async regenerateCrl(now: Date = new Date()): Promise<Uint8Array> {
    return this.#writeCrl(now)
  }

  /**
   * Replaces the CA private key (`keylime_ca -c import-priv`) and sets `lastserial` to
   * `lastSerial + 1`, as upstream. The key must match `cacert.crt`.
   *
   * @throws {CaError} `ERR_CA_INVALID_INPUT` if the key does not belong to the CA certificate.
   */
  async importPrivateKey(pem: string, lastSerial: number, password?: string): Promise<void> {
    if (!Number.isSafeInteger(lastSerial) || lastSerial < 0) {
      throw new CaError('ERR_CA_INVALID_INPUT', 'serial must be a non-negative integer')
    }
    const plain = decryptPrivateKeyPem(pem, password, 'imported CA key')
    const given = Buffer.from(publicPemOf(plain).replace(/-----[^-]+-----|\s/g, ''), 'base64')
    if (!given.equals(Buffer.from(this.caCert.publicKey.rawData))) {
      throw new CaError('ERR_CA_INVALID_INPUT', 'the imported key does not match cacert.crt')
    }
    this.#data.ca = plain
    this.#data.lastserial = lastSerial + 1
    this.#caKey = undefined
    await this.#saveKeystore()
  }

  /** The CRL currently on disk. */
  async readCrl(): Promise<X509Crl> {
    const path = caPath(this.dir, CA_FILES.crlDer)
    try {
      return new X509Crl(new Uint8Array(await readBounded(path)))
    } catch (cause) {
      if (cause instanceof CaError) throw cause
      throw new CaError('ERR_CA_MALFORMED', `not a DER CRL: ${path}`, { cause })
    }
  }
}
