/**
 * `keylime health [--verifier] [--registrar] [--timeout SECONDS]`: asks the control plane's roles
 * for their `GET /health` over mTLS and says, one line a role, whether they are healthy — the
 * check a container runtime runs (`HEALTHCHECK CMD ["keylime", "health"]`), with no curl needed.
 *
 * - The roles' addresses come from their own configuration, read as the roles read it
 *   (verifier.conf `[verifier] ip`/`port`, registrar.conf `[registrar] ip`/`tls_port`, their
 *   snippets, `KEYLIME_*` overrides); a wildcard bind address (`0.0.0.0`, `::`) is asked on
 *   127.0.0.1.
 * - The client certificate is the tenant's (`load-client-tls.ts`: tenant.conf, by default the
 *   cv_ca under `KEYLIME_DIR`).
 * - No role flag asks both, as `keylime` with no flag runs both.
 *
 * Exit codes: 0 every role asked is healthy; 1 one is unhealthy or unreachable (its line says
 * which); 2 usage; 8 the configuration or the client certificate cannot be read (as the
 * tenant's 8), naming the file.
 *
 * @module
 */
import { parseArgs } from 'node:util'
import { getKeylimeDir } from '../config/get-keylime-dir.ts'
import { loadRegistrarConfig } from '../config/load-registrar-config.ts'
import { loadTenantConfig } from '../config/load-tenant-config.ts'
import { loadVerifierConfig } from '../config/load-verifier-config.ts'
import type { ConfigLoadOptions } from '../config/read-config-files.ts'
import { formatHostPort } from '../http/format-host-port.ts'
import { MtlsClient } from '../http/mtls-client.ts'
import { TENANT_EXIT, toTenantError } from '../tenant/errors.ts'
import { loadClientTls } from '../tenant/load-client-tls.ts'
import { type HealthRole, probeHealth } from './probe-health.ts'

/** Exit codes of `keylime health`. */
export const HEALTH_EXIT = {
  HEALTHY: 0,
  UNHEALTHY: 1,
  USAGE: 2,
  /** The tenant's exit code for a local configuration error. */
  CONFIG: TENANT_EXIT.CONFIG,
} as const

/** Default bound of each role's answer (s). */
const DEFAULT_TIMEOUT_S = 5

/** Help for `keylime health`. */
export const HEALTH_USAGE = `usage: keylime health [--verifier] [--registrar] [--timeout SECONDS]

Asks the verifier (mTLS port, [verifier] ip:port) and the registrar (admin mTLS port,
[registrar] ip:tls_port) for GET /health with the tenant's client certificate (tenant.conf;
default KEYLIME_DIR/cv_ca) and prints one line a role. Both roles when no role flag is given.

  --timeout SECONDS   bound of each answer (default ${DEFAULT_TIMEOUT_S})

exit status: 0 all healthy, 1 a role is unhealthy or unreachable, 2 usage,
8 configuration or client certificate unreadable
`

/** Where `keylime health` writes and what it reads (the CLI's `CliIo`). */
export interface HealthIo {
  stdout: (s: string) => void
  stderr: (s: string) => void
  env: NodeJS.ProcessEnv
  /** Config loading overrides (tests: `etcDir`, `usrEtcDir`). */
  config?: ConfigLoadOptions
}

/** A wildcard bind address is asked on the loopback address. */
function connectHost(ip: string): string {
  const bare = ip.trim().replace(/^\[|\]$/g, '')
  return bare === '' || bare === '0.0.0.0' || bare === '::' ? '127.0.0.1' : bare
}

/** The parsed arguments, or a usage error's message. */
function parseHealthArgs(
  args: readonly string[],
): { roles: HealthRole[]; timeoutMs: number; help: boolean } | string {
  let values: { verifier?: boolean; registrar?: boolean; timeout?: string; help?: boolean }
  try {
    values = parseArgs({
      args: [...args],
      options: {
        verifier: { type: 'boolean' },
        registrar: { type: 'boolean' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  }
  const seconds = values.timeout === undefined ? DEFAULT_TIMEOUT_S : Number(values.timeout)
  if (!Number.isFinite(seconds) || seconds <= 0) {
    return `--timeout takes a positive number of seconds, not "${values.timeout}"`
  }
  const roles: HealthRole[] = []
  if (values.verifier) roles.push('verifier')
  if (values.registrar) roles.push('registrar')
  if (roles.length === 0) roles.push('verifier', 'registrar')
  return { roles, timeoutMs: seconds * 1000, help: values.help === true }
}

/** The `/health` URL of each role, from its configuration. */
function healthUrls(roles: HealthRole[], config: ConfigLoadOptions): Map<HealthRole, string> {
  const urls = new Map<HealthRole, string>()
  const url = (ip: string, port: number) =>
    `https://${formatHostPort(connectHost(ip), port)}/health`
  if (roles.includes('verifier')) {
    const v = loadVerifierConfig(config).verifier
    urls.set('verifier', url(v.ip, v.port))
  }
  if (roles.includes('registrar')) {
    const r = loadRegistrarConfig(config).registrar
    urls.set('registrar', url(r.ip, r.tls_port))
  }
  return urls
}

/**
 * Runs `keylime health` with `args` (after `health`).
 *
 * @returns the exit code ({@link HEALTH_EXIT})
 */
export async function runHealth(args: readonly string[], io: HealthIo): Promise<number> {
  const parsed = parseHealthArgs(args)
  if (typeof parsed === 'string') {
    io.stderr(`keylime health: ${parsed}\n\n${HEALTH_USAGE}`)
    return HEALTH_EXIT.USAGE
  }
  if (parsed.help) {
    io.stdout(HEALTH_USAGE)
    return HEALTH_EXIT.HEALTHY
  }
  const config: ConfigLoadOptions = { env: io.env, ...io.config }
  let urls: Map<HealthRole, string>
  let client: MtlsClient
  try {
    urls = healthUrls(parsed.roles, config)
    const tls = await loadClientTls(loadTenantConfig(config).tenant, getKeylimeDir(io.env), io.env)
    client = new MtlsClient({ ...tls, timeoutMs: parsed.timeoutMs })
  } catch (err) {
    const e = toTenantError(err)
    io.stderr(`keylime health: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`)
    return e.exitCode === TENANT_EXIT.CONFIG ? HEALTH_EXIT.CONFIG : HEALTH_EXIT.UNHEALTHY
  }
  const probes = await Promise.all(
    [...urls].map(([role, url]) => probeHealth(client, role, url, parsed.timeoutMs)),
  )
  for (const p of probes) io.stdout(`${p.role}: ${p.summary}\n`)
  return probes.every((p) => p.ok) ? HEALTH_EXIT.HEALTHY : HEALTH_EXIT.UNHEALTHY
}
