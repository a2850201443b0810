/**
 * Brings the agent up as rust-keylime's `main.rs` does: keylime_dir and the secure directory,
 * `run_as` (so a bad account stops the agent before anything else), the NK, the TPM (`TCTI`,
 * one connection per operation: tpm/tpm-access.ts), EK / EK certificate / AK, the agent UUID
 * (`generate`, `hash_ek` or as configured), the mTLS server identity, the agent API on `ip:port`
 * — mTLS requiring a client certificate from `trusted_client_ca` unless `enable_agent_mtls =
 * false` — then registration and activation with the registrar (retried with back-off while it
 * is unreachable). Stopping unmounts the secure tmpfs the agent mounted.
 *
 * @module
 */

import { createHash, randomUUID } from 'node:crypto'
import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { getLogger } from '../log/logger.ts'
import { parseTpm2bPublic, toKeyObject } from '../tpm/public-area.ts'
import { AgentApi } from './api/agent-api.ts'
import { KeyExchange } from './api/key-exchange.ts'
import type { AgentConfig } from './config/load-agent-config.ts'
import { checkRunAsAccess, dropPrivileges, resolveRunAs } from './drop-privileges.ts'
import { AgentError, isAgentError } from './errors.ts'
import { loadOrCreateNk } from './load-or-create-nk.ts'
import { loadOrCreateServerCert } from './load-or-create-server-cert.ts'
import { readCaFile } from './read-ca-file.ts'
import { installPayload } from './payload/install-payload.ts'
import { prepareSecureDir, type SecureDir } from './payload/prepare-secure-dir.ts'
import { runRevocationActions } from './payload/run-revocation-actions.ts'
import { guardSecureMount, unmountSecureDir } from './payload/unmount-secure-dir.ts'
import { type MeasurementLogs, openMeasurementLogs, readBootTime } from './read-measurement-logs.ts'
import { registerAgent } from './registrar-client.ts'
import { type HardwareAgentTpm, openHardwareAgentTpm } from './tpm/hardware-agent-tpm.ts'
import { TpmAccess } from './tpm/tpm-access.ts'
import { startPushMode } from './push/start-push-mode.ts'
import type { FetchLike } from './push/verifier-http.ts'
import { loadTpmDeviceAddon } from './transport/load-tpm-device-addon.ts'
import { resolveTcti, type TctiSpec } from './transport/open-transport.ts'
import { sleepUnlessAborted } from './sleep-unless-aborted.ts'

/** A running agent. */
export interface RunningAgent {
  /** Agent UUID in use. */
  uuid: string
  /** The API handler (pull mode; undefined in push mode). */
  api: AgentApi | undefined
  /** The TPM identity. */
  tpm: HardwareAgentTpm
  /** The listener (pull mode; push mode listens nowhere). */
  server: ReturnType<typeof Bun.serve> | undefined
  /** Stops listening, closes the TPM and unmounts the secure tmpfs the agent mounted. */
  stop(): Promise<void>
}

/** Options of {@link startAgent} beyond the configuration. */
export interface StartAgentOptions {
  /** TPM transport (default from `TCTI` / `TPM2TOOLS_TCTI`). */
  tcti?: TctiSpec
  /** Skip registration (tests of the API alone). */
  skipRegistration?: boolean
  /** Aborted by SIGTERM/SIGINT: start-up stops (`ERR_AGENT_STOPPED`) and cleans up. */
  signal?: AbortSignal
  /** Push mode: sends the verifier requests (tests; default `fetch` with the verifier CA). */
  fetch?: FetchLike
}

/** Gives the secure directory back; resolves with a failure message, or undefined. */
type ReleaseSecureDir = () => Promise<string | undefined>

const log = getLogger('agent')

/**
 * Starts the agent.
 *
 * @throws {AgentError} for configuration, `run_as`, TPM and registration failures, and
 *   `ERR_AGENT_STOPPED` when `opts.signal` aborts start-up.
 */
export async function startAgent(
  config: AgentConfig,
  opts: StartAgentOptions = {},
): Promise<RunningAgent> {
  if (!existsSync(config.keylimeDir)) mkdirSync(config.keylimeDir, { recursive: true, mode: 0o700 })
  const secure = prepareSecureDir(config.paths.secureDir, config.raw.secure_size)
  log.info('secure directory ready', {
    path: secure.path,
    tmpfs: secure.tmpfs,
    ...(secure.note ? { note: secure.note } : {}),
  })
  const cleanup: { release: ReleaseSecureDir } = {
    release: async () => (secure.mounted ? unmountSecureDir(secure.path) : undefined),
  }
  const tcti = opts.tcti ?? resolveTcti()
  // load the device addon while still root: Bun unpacks it into TMPDIR, which run_as may not write
  if (tcti.kind === 'device') loadTpmDeviceAddon()
  // securityfs logs are root-only: open them before run_as
  const logs = openMeasurementLogs(config.paths)
  try {
    applyRunAs(config, secure, tcti, cleanup)
    return await bringUp(config, tcti, opts, logs, async () => {
      logs.ima.close()
      await releaseSecureDir(secure, cleanup.release)
    })
  } catch (err) {
    logs.ima.close()
    await releaseSecureDir(secure, cleanup.release)
    throw err
  }
}

/** Unmounts the secure tmpfs through `release` and logs the outcome. */
async function releaseSecureDir(secure: SecureDir, release: ReleaseSecureDir): Promise<void> {
  if (!secure.mounted) return
  const failure = await release()
  if (failure === undefined) log.info('secure directory unmounted', { path: secure.path })
  else log.warn('secure directory not unmounted', { path: secure.path, error: failure })
}

/**
 * `run_as`, as root: hands the secure directory to the account, leaves its unmount to a root
 * helper if the agent mounted it (`cleanup.release` then asks the helper), switches accounts,
 * and checks that the account can use keylime_dir, the agent's files and the TPM device.
 */
function applyRunAs(
  config: AgentConfig,
  secure: SecureDir,
  tcti: TctiSpec,
  cleanup: { release: ReleaseSecureDir },
): void {
  const account = resolveRunAs(config.raw.run_as, (m) => log.warn(m))
  if (account === undefined) return
  chownSync(secure.path, account.uid, account.gid)
  if (secure.mounted) {
    const guard = guardSecureMount(secure.path)
    cleanup.release = () => guard.release()
  }
  dropPrivileges(account)
  const p = config.paths
  checkRunAsAccess(account, config.keylimeDir, [
    p.serverKey,
    p.serverCert,
    p.agentData,
    p.payloadKey,
    ...(tcti.kind === 'device' ? [tcti.path] : []),
  ])
  log.info('dropped privileges', { run_as: account.spec, uid: account.uid, gid: account.gid })
}

function stopped(): AgentError {
  return new AgentError('ERR_AGENT_STOPPED', 'stopped by a signal before the agent was up')
}

/** Everything after the secure directory and `run_as`: keys, TPM, API, registration. */
async function bringUp(
  config: AgentConfig,
  tcti: TctiSpec,
  opts: StartAgentOptions,
  logs: MeasurementLogs,
  releaseSecure: () => Promise<void>,
): Promise<RunningAgent> {
  const raw = config.raw
  const nk = loadOrCreateNk(config.paths.payloadKey)
  const access = TpmAccess.forTcti(tcti)
  const tpm = await openHardwareAgentTpm({
    access,
    hashAlg: config.hashAlg,
    encAlg: config.encAlg,
    signAlg: config.signAlg,
    ekHandle: config.ekHandle,
    agentDataPath: config.paths.agentData,
    nk,
    endorsementAuth: config.endorsementAuth,
    startup: tcti.kind === 'swtpm',
    log: (msg, fields) => log.info(msg, fields),
  }).catch(async (err: unknown) => {
    await access.close()
    throw err
  })
  const uuid = agentUuid(raw.uuid, tpm)
  log.info('agent identity', {
    agent_id: uuid,
    hash_alg: config.hashAlg,
    enc_alg: config.encAlg,
    sign_alg: config.signAlg,
    ek_cert: tpm.ekCertPem !== undefined,
  })
  if (config.mode === 'push') {
    try {
      if (opts.skipRegistration !== true) {
        const b = config.push.backoff
        await registerWithRetries(config, uuid, tpm, undefined, opts.signal, {
          maxRetries: b.maxRetries,
          delayMs: (n) => Math.min(b.initialDelayMs * 2 ** n, b.maxDelayMs),
        })
      }
      const push = startPushMode(config, uuid, tpm, logs, opts)
      return {
        uuid,
        api: undefined,
        tpm,
        server: undefined,
        async stop() {
          await push.stop()
          await tpm.close()
          await releaseSecure()
        },
      }
    } catch (err) {
      await tpm.close().catch(() => undefined)
      throw err
    }
  }
  let server: ReturnType<typeof Bun.serve> | undefined
  try {
    const { tls, mtlsCertPem } = await serverTls(config, uuid)
    const api = createApi(config, uuid, tpm, tls !== undefined, logs)
    server = Bun.serve({ hostname: raw.ip, port: raw.port, tls, fetch: (req) => api.handle(req) })
    log.info('agent API listening', {
      url: `${tls !== undefined ? 'https' : 'http'}://${raw.ip}:${server.port}`,
      versions: config.apiVersions.join(','),
    })
    if (opts.skipRegistration !== true) {
      await registerWithRetries(config, uuid, tpm, mtlsCertPem, opts.signal, {
        maxRetries: raw.max_retries,
        delayMs: (n) =>
          raw.exponential_backoff ? raw.retry_interval * 2 ** n : raw.retry_interval,
      })
    }
    const listening = server
    return {
      uuid,
      api,
      tpm,
      server: listening,
      async stop() {
        listening.stop(true)
        await tpm.close()
        await releaseSecure()
      },
    }
  } catch (err) {
    server?.stop(true)
    await tpm.close().catch(() => undefined)
    throw err
  }
}

/** The agent id: as configured, `generate` (random) or `hash_ek` (SHA-256 of the EK PEM). */
function agentUuid(configured: string, tpm: HardwareAgentTpm): string {
  const uuid = configured.trim()
  if (uuid === 'generate') return randomUUID()
  if (uuid !== 'hash_ek') return uuid
  const pem = String(
    toKeyObject(parseTpm2bPublic(tpm.ekTpm2b)).export({ format: 'pem', type: 'spki' }),
  )
  return createHash('sha256').update(pem).digest('hex')
}

/** The mTLS server identity and client CA, or no TLS with `enable_agent_mtls = false`. */
async function serverTls(
  config: AgentConfig,
  uuid: string,
): Promise<{ tls: Parameters<typeof Bun.serve>[0]['tls']; mtlsCertPem: string }> {
  const raw = config.raw
  if (!raw.enable_agent_mtls) {
    log.warn('agent mTLS is disabled (enable_agent_mtls = false)')
    return { tls: undefined, mtlsCertPem: 'disabled' }
  }
  const id = await loadOrCreateServerCert({
    keyPath: config.paths.serverKey,
    certPath: config.paths.serverCert,
    password: raw.server_key_password,
    uuid,
    contactIp: raw.contact_ip,
  })
  const cas = config.paths.trustedClientCa.map((p) => readCaFile('trusted_client_ca', p))
  return {
    tls: { key: id.keyPem, cert: id.certPem, ca: cas, requestCert: true, rejectUnauthorized: true },
    mtlsCertPem: id.certPem,
  }
}

/** The agent API with its key exchange, payload installation and revocation hooks. */
function createApi(
  config: AgentConfig,
  uuid: string,
  tpm: HardwareAgentTpm,
  mtls: boolean,
  logs: MeasurementLogs,
): AgentApi {
  const raw = config.raw
  const payloadsAllowed = mtls || raw.enable_insecure_payload
  let unzippedDir = `${config.paths.secureDir}/unzipped`
  let api: AgentApi | undefined
  const keys = new KeyExchange({
    uuid,
    decrypt: (ct) => tpm.decryptWithNk(ct),
    onKey: async (k, payload) => {
      log.info('bootstrap key derived', { agent_id: uuid, with_payload: payload !== undefined })
      if (!payloadsAllowed) {
        log.warn('payload ignored: mTLS is off and enable_insecure_payload is false')
        return
      }
      try {
        const done = await installPayload(k, payload, {
          secureDir: config.paths.secureDir,
          encKeyname: raw.enc_keyname,
          decPayloadFile: raw.dec_payload_file,
          extractZip: raw.extract_payload_zip,
          payloadScript: raw.payload_script,
          log: (msg, fields) => log.info(msg, fields),
        })
        unzippedDir = done.unzippedDir
        if (done.revocationCertPem !== undefined && config.paths.revocationCert === undefined) {
          api?.setRevocationCert(done.revocationCertPem)
          log.info('revocation certificate loaded from the payload')
        }
      } catch (err) {
        log.error('payload not installed', { error: err instanceof Error ? err.message : err })
      }
    },
  })
  api = new AgentApi({
    uuid,
    tpm,
    keys,
    apiVersions: config.apiVersions,
    ima: logs.ima,
    measuredBootLog: logs.uefiLog,
    bootTime: readBootTime(),
    revocationCertPem:
      config.paths.revocationCert !== undefined && existsSync(config.paths.revocationCert)
        ? readFileSync(config.paths.revocationCert, 'utf8')
        : undefined,
    hooks: {
      onRevocation: async (notice) => {
        if (!notice.verified) {
          log.warn('revocation notice ignored: no revocation certificate loaded')
          return
        }
        log.info('revocation notice verified', { agent_id: uuid })
        await runRevocationActions(notice.msg, {
          configured: config.revocationActions,
          actionsDir: raw.revocation_actions_dir,
          unzippedDir,
          allowPayloadActions: raw.allow_payload_revocation_actions,
          keylimeDir: config.keylimeDir,
          log: (msg, fields) => log.info(msg, fields),
        })
      },
    },
  })
  return api
}

/**
 * Registers and activates, retrying with back-off while the registrar is unreachable (pull:
 * `max_retries`, `retry_interval`, `exponential_backoff`; push: `exponential_backoff_*`); a
 * refusal is final. Push mode sends no mTLS certificate (`mtlsCertPem` undefined).
 */
async function registerWithRetries(
  config: AgentConfig,
  uuid: string,
  tpm: HardwareAgentTpm,
  mtlsCertPem: string | undefined,
  signal: AbortSignal | undefined,
  retry: { maxRetries: number; delayMs: (attempt: number) => number },
): Promise<void> {
  const raw = config.raw
  const registrarUrl = config.registrarUrl
  const caPem =
    config.registrarCaPath === undefined
      ? undefined
      : readCaFile('registrar_tls_ca_cert', config.registrarCaPath)
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw stopped()
    try {
      const r = await registerAgent({
        registrarUrl,
        uuid,
        tpm,
        contactIp: raw.contact_ip,
        contactPort: raw.contact_port,
        mtlsCertPem,
        caPem,
        apiVersions: config.mode === 'push' ? config.push.registrarApiVersions : config.apiVersions,
      })
      log.info('registered and activated', { agent_id: uuid, registrar_api: r.apiVersion })
      return
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err)
      if (isAgentError(err)) throw err
      if (attempt >= retry.maxRetries) {
        throw new AgentError('ERR_AGENT_REGISTRATION', `registrar ${registrarUrl}: ${msg}`, {
          cause: err,
        })
      }
      const wait = retry.delayMs(attempt)
      log.warn('registrar not reachable, retrying', { error: msg, retry_in_ms: wait })
      await sleepUnlessAborted(wait, signal, stopped)
    }
  }
}
