/**
 * Runs the control-plane roles (registrar, verifier) in one process.
 *
 * Start-up order, each step failing with a message that names the file or option to fix:
 * 1. `logging.conf` level; `KEYLIME_DIR`.
 * 2. The role configurations (`verifier.conf`, `registrar.conf`, `ca.conf`, with snippets and
 *    `KEYLIME_*` overrides).
 * 3. TLS: `tls_dir = generate` creates or reuses `$KEYLIME_DIR/cv_ca` (verifier) or `reg_ca`
 *    (registrar); then each role's certificate, key and trusted CAs are loaded.
 * 4. The database: one instance per location shared by the roles (embedded PGlite by default).
 * 5. The role listeners.
 *
 * {@link ControlPlane.stop} drains in-flight requests for `shutdown_drain_timeout` seconds and closes
 * the database.
 *
 * @module
 */
import { ensureCvCa, loadTlsMaterial, resolveTlsFiles, type TlsMaterial } from '../ca/index.ts'
import {
  type ConfigLoadOptions,
  getKeylimeDir,
  loadCaConfig,
  loadLoggingConfig,
  loadRegistrarConfig,
  loadVerifierConfig,
  type RegistrarConfig,
  type VerifierConfig,
} from '../config/index.ts'
import { type KeylimeDatabase, openDatabase } from '../db/index.ts'
import type { RoleHandle } from '../http/role.ts'
import type { RunningServer } from '../http/serve.ts'
import { getLogger, setLogLevel } from '../log/logger.ts'
import { startRegistrar } from '../registrar/start-registrar.ts'
import { startVerifier } from '../verifier/start-verifier.ts'

/** Which roles to run. */
export interface Roles {
  verifier: boolean
  registrar: boolean
}

/** Options of {@link runControlPlane}. */
export interface ControlPlaneOptions {
  roles: Roles
  /** Config sources (defaults: `/etc/keylime`, `/usr/etc/keylime`, `process.env`). */
  config?: ConfigLoadOptions
}

/** A running control plane. */
export interface ControlPlane {
  keylimeDir: string
  servers: RunningServer[]
  /** Graceful stop: drain, close listeners, close the database. Idempotent. */
  stop(): Promise<void>
}

const log = getLogger()

async function roleDatabase(
  opened: KeylimeDatabase[],
  keylimeDir: string,
  db: {
    database_url: string
    database_pool_sz_ovfl: [number, number]
    auto_migrate_db: boolean
    database_timeout: number
  },
): Promise<KeylimeDatabase> {
  const database = await openDatabase({
    url: db.database_url,
    timeoutMs: db.database_timeout * 1000,
    keylimeDir,
    poolSizeOverflow: db.database_pool_sz_ovfl,
    autoMigrate: db.auto_migrate_db,
  })
  opened.push(database)
  return database
}

/**
 * The verifier's TLS material. With `tls_dir = generate` it creates cv_ca; `registrar` is the
 * registrar's section when it serves cv_ca's server certificate too (`tls_dir = default` in the
 * same process), so that certificate also carries the registrar's `ip` and
 * `cert_subject_alternative_names`.
 */
async function verifierTls(
  cfg: VerifierConfig,
  keylimeDir: string,
  ca: ReturnType<typeof loadCaConfig>,
  registrar?: RegistrarConfig['registrar'],
): Promise<TlsMaterial> {
  const v = cfg.verifier
  if (v.tls_dir.trim() === 'generate') {
    const names = [
      ...v.cert_subject_alternative_names,
      ...(registrar?.cert_subject_alternative_names ?? []),
    ]
    const result = await ensureCvCa({
      keylimeDir,
      settings: ca.ca,
      ip: registrar === undefined ? v.ip : [v.ip, registrar.ip],
      subjectAltNames: names.join(','),
      serverKeyPassword: v.server_key_password,
      clientKeyPassword: v.client_key_password,
    })
    if (result.created.ca) log.info('created the cv_ca certificate authority', { dir: result.dir })
  }
  const files = resolveTlsFiles({
    keylimeDir,
    tlsDir: v.tls_dir,
    component: 'verifier',
    serverKey: v.server_key,
    serverKeyPassword: v.server_key_password,
    serverCert: v.server_cert,
    clientKey: v.client_key,
    clientKeyPassword: v.client_key_password,
    clientCert: v.client_cert,
    trustedCa: v.trusted_client_ca,
    clientCrl: v.client_crl,
  })
  return loadTlsMaterial(files)
}

async function registrarTls(
  cfg: RegistrarConfig,
  keylimeDir: string,
  ca: ReturnType<typeof loadCaConfig>,
): Promise<TlsMaterial> {
  const r = cfg.registrar
  if (r.tls_dir.trim() === 'generate') {
    await ensureCvCa({
      keylimeDir,
      settings: ca.ca,
      dirName: 'reg_ca',
      withClient: false,
      ip: r.ip,
      subjectAltNames: r.cert_subject_alternative_names.join(','),
      serverKeyPassword: r.server_key_password,
    })
  }
  const files = resolveTlsFiles({
    keylimeDir,
    tlsDir: r.tls_dir,
    component: 'registrar',
    generateDirName: 'reg_ca',
    serverKey: r.server_key,
    serverKeyPassword: r.server_key_password,
    serverCert: r.server_cert,
    trustedCa: r.trusted_client_ca,
    clientCrl: r.client_crl,
  })
  return loadTlsMaterial(files, { server: true, client: false })
}

/** Awaits both promises; if either fails, waits for the other too, then throws the first failure. */
async function settleBoth<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b])
  if (ra.status === 'rejected') throw ra.reason
  if (rb.status === 'rejected') throw rb.reason
  return [ra.value, rb.value]
}

/**
 * Starts the chosen roles. On any start-up failure everything already started is stopped and the
 * error is rethrown.
 */
export async function runControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const configOpts: ConfigLoadOptions = {
    warn: (msg, fields) => log.warn(msg, fields),
    ...opts.config,
  }
  const env = configOpts.env ?? process.env
  setLogLevel(loadLoggingConfig(configOpts).level)
  const keylimeDir = getKeylimeDir(env)
  const ca = loadCaConfig(configOpts)
  const verifierCfg = opts.roles.verifier ? loadVerifierConfig(configOpts) : undefined
  const registrarCfg = opts.roles.registrar ? loadRegistrarConfig(configOpts) : undefined

  const opened: KeylimeDatabase[] = []
  const handles: RoleHandle[] = []
  let drainMs = 10_000
  const stopAll = async () => {
    await Promise.allSettled(handles.map((h) => h.stop(drainMs)))
    await Promise.allSettled(opened.map((d) => d.close()))
  }
  try {
    // TLS and database set-up are independent: run them side by side. The verifier's TLS goes
    // before the registrar's: with tls_dir = generate it creates the cv_ca the registrar reuses.
    const tlsReady = (async () => ({
      verifier:
        verifierCfg &&
        (await verifierTls(
          verifierCfg,
          keylimeDir,
          ca,
          registrarCfg?.registrar.tls_dir.trim() === 'default' ? registrarCfg.registrar : undefined,
        )),
      registrar: registrarCfg && (await registrarTls(registrarCfg, keylimeDir, ca)),
    }))()
    const dbReady = (async () => ({
      verifier: verifierCfg && (await roleDatabase(opened, keylimeDir, verifierCfg.verifier)),
      registrar: registrarCfg && (await roleDatabase(opened, keylimeDir, registrarCfg.registrar)),
    }))()
    const [tls, dbs] = await settleBoth(tlsReady, dbReady)
    if (verifierCfg && tls.verifier && dbs.verifier) {
      drainMs = verifierCfg.verifier.shutdown_drain_timeout * 1000
      handles.push(
        await startVerifier({
          config: verifierCfg,
          keylimeDir,
          database: dbs.verifier,
          tls: tls.verifier,
          log: getLogger('verifier'),
        }),
      )
    }
    if (registrarCfg && tls.registrar && dbs.registrar) {
      handles.push(
        await startRegistrar({
          config: registrarCfg,
          keylimeDir,
          database: dbs.registrar,
          tls: tls.registrar,
          log: getLogger('registrar'),
        }),
      )
    }
  } catch (err) {
    await stopAll()
    throw err
  }

  let stopping: Promise<void> | undefined
  return {
    keylimeDir,
    servers: handles.flatMap((h) => h.servers),
    stop: () => {
      stopping ??= stopAll()
      return stopping
    },
  }
}
