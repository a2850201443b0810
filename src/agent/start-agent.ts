/**
 * Brings the agent up as rust-keylime's `main.rs` does: keylime_dir and the secure directory, the
 * NK, the TPM transport (`TCTI`), EK / EK certificate / AK, the agent UUID (`generate`,
 * `hash_ek` or as configured), the mTLS server identity, registration and activation with the
 * registrar (retried with back-off while it is unreachable), then the agent API on
 * `ip:port` — mTLS requiring a client certificate from `trusted_client_ca` unless
 * `enable_agent_mtls = false` — and finally `run_as`.
 *
 * @module
 */

import { createHash, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { getLogger } from '../log/logger.ts'
import { parseTpm2bPublic, toKeyObject } from '../tpm/public-area.ts'
import { AgentApi } from './api/agent-api.ts'
import { KeyExchange } from './api/key-exchange.ts'
import type { AgentConfig } from './config/load-agent-config.ts'
import { dropPrivileges } from './drop-privileges.ts'
import { AgentError, isAgentError } from './errors.ts'
import { loadOrCreateNk } from './load-or-create-nk.ts'
import { loadOrCreateServerCert } from './load-or-create-server-cert.ts'
import { installPayload } from './payload/install-payload.ts'
import { prepareSecureDir } from './payload/prepare-secure-dir.ts'
import { runRevocationActions } from './payload/run-revocation-actions.ts'
import { ImaListFile, readBootTime, uefiLogReader } from './read-measurement-logs.ts'
import { registerAgent } from './registrar-client.ts'
import { type HardwareAgentTpm, openHardwareAgentTpm } from './tpm/hardware-agent-tpm.ts'
import { TpmClient } from './tpm/tpm-client.ts'
import { openTransport, resolveTcti, type TctiSpec } from './transport/open-transport.ts'

/** A running agent. */
export interface RunningAgent {
  /** Agent UUID in use. */
  uuid: string
  /** The API handler. */
  api: AgentApi
  /** The TPM identity. */
  tpm: HardwareAgentTpm
  /** The listener. */
  server: ReturnType<typeof Bun.serve>
  /** Stops listening and closes the TPM. */
  stop(): Promise<void>
}

/** Options of {@link startAgent} beyond the configuration. */
export interface StartAgentOptions {
  /** TPM transport (default from `TCTI` / `TPM2TOOLS_TCTI`). */
  tcti?: TctiSpec
  /** Skip registration (tests of the API alone). */
  skipRegistration?: boolean
}

const log = getLogger('agent')

/**
 * Starts the agent.
 *
 * @throws {AgentError} for configuration, TPM and registration failures.
 */
export async function startAgent(
  config: AgentConfig,
  opts: StartAgentOptions = {},
): Promise<RunningAgent> {
  const raw = config.raw
  if (!existsSync(config.keylimeDir)) mkdirSync(config.keylimeDir, { recursive: true, mode: 0o700 })
  const secure = prepareSecureDir(config.paths.secureDir, raw.secure_size)
  log.info('secure directory ready', {
    path: secure.path,
    tmpfs: secure.tmpfs,
    ...(secure.note ? { note: secure.note } : {}),
  })
  const nk = loadOrCreateNk(config.paths.payloadKey)

  const tcti = opts.tcti ?? resolveTcti()
  const client = new TpmClient(await openTransport(tcti))
  log.info('TPM transport open', { tcti: client.description })
  const tpm = await openHardwareAgentTpm({
    client,
    hashAlg: config.hashAlg,
    encAlg: config.encAlg,
    signAlg: config.signAlg,
    ekHandle: config.ekHandle,
    agentDataPath: config.paths.agentData,
    nk,
    endorsementAuth: config.endorsementAuth,
    startup: tcti.kind === 'swtpm',
    log: (msg, fields) => log.info(msg, fields),
  })

  let uuid = raw.uuid.trim()
  if (uuid === 'generate') uuid = randomUUID()
  else if (uuid === 'hash_ek') {
    const pem = String(
      toKeyObject(parseTpm2bPublic(tpm.ekTpm2b)).export({ format: 'pem', type: 'spki' }),
    )
    uuid = createHash('sha256').update(pem).digest('hex')
  }
  log.info('agent identity', {
    agent_id: uuid,
    hash_alg: config.hashAlg,
    enc_alg: config.encAlg,
    sign_alg: config.signAlg,
    ek_cert: tpm.ekCertPem !== undefined,
  })

  const mtls = raw.enable_agent_mtls
  let tls: Parameters<typeof Bun.serve>[0]['tls']
  let mtlsCertPem = 'disabled'
  if (mtls) {
    const id = await loadOrCreateServerCert({
      keyPath: config.paths.serverKey,
      certPath: config.paths.serverCert,
      password: raw.server_key_password,
      uuid,
      contactIp: raw.contact_ip,
    })
    mtlsCertPem = id.certPem
    const cas = config.paths.trustedClientCa.map((p) => {
      if (!existsSync(p)) {
        throw new AgentError(
          'ERR_AGENT_CONFIG',
          `option trusted_client_ca: ${p} does not exist (copy the verifier's cv_ca/cacert.crt there)`,
        )
      }
      return readFileSync(p, 'utf8')
    })
    tls = {
      key: id.keyPem,
      cert: id.certPem,
      ca: cas,
      requestCert: true,
      rejectUnauthorized: true,
    }
  } else {
    log.warn('agent mTLS is disabled (enable_agent_mtls = false)')
  }
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
    ima: new ImaListFile(config.paths.imaList),
    measuredBootLog: uefiLogReader(config.paths.measuredBootLog),
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

  const server = Bun.serve({
    hostname: raw.ip,
    port: raw.port,
    tls,
    fetch: (req) => api.handle(req),
  })
  log.info('agent API listening', {
    url: `${mtls ? 'https' : 'http'}://${raw.ip}:${server.port}`,
    versions: config.apiVersions.join(','),
  })

  if (opts.skipRegistration !== true) {
    const registrarUrl = `http://${raw.registrar_ip}:${raw.registrar_port}`
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await registerAgent({
          registrarUrl,
          uuid,
          tpm,
          contactIp: raw.contact_ip,
          contactPort: raw.contact_port,
          mtlsCertPem,
          apiVersions: config.apiVersions,
        })
        log.info('registered and activated', { agent_id: uuid, registrar_api: r.apiVersion })
        break
      } catch (err) {
        const unreachable = !(err instanceof AgentError) && attempt < raw.max_retries
        const msg = err instanceof Error ? err.message : String(err)
        if (!unreachable) {
          server.stop(true)
          await tpm.close().catch(() => undefined)
          throw isAgentError(err)
            ? err
            : new AgentError('ERR_AGENT_REGISTRATION', `registrar ${registrarUrl}: ${msg}`, {
                cause: err,
              })
        }
        const wait = raw.exponential_backoff
          ? raw.retry_interval * 2 ** attempt
          : raw.retry_interval
        log.warn('registrar not reachable, retrying', { error: msg, retry_in_ms: wait })
        await Bun.sleep(wait)
      }
    }
  }
  await tpm.releaseEk()

  const dropped = dropPrivileges(raw.run_as)
  if (dropped !== undefined) log.info('dropped privileges', { run_as: raw.run_as })

  return {
    uuid,
    api,
    tpm,
    server,
    async stop() {
      server.stop(true)
      await tpm.close()
    },
  }
}
