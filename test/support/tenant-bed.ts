/**
 * The set-up of most keylime-tests scenarios, for their mirrors in `test/keylime-tests`: the
 * control plane as a child process (verifier, registrar plain and TLS ports, one cv_ca in its own
 * `KEYLIME_DIR`), simulated agents registered with it, and `keylime_tenant` run in-process.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runTenant } from './run-tenant.ts'
import {
  type ChildRun,
  controlPlaneEnv,
  MAIN_TS,
  type Ports,
  spawnCollect,
} from './control-plane-process.ts'
import { type Fleet, startFleet } from './fleet/fleet.ts'
import type { SimAgent } from './fleet/sim-agent.ts'

/** One `keylime_tenant` run: exit code, output, and stdout parsed when it is JSON. */
export interface TenantRun {
  code: number
  out: string
  err: string
  /** stdout + stderr. */
  text: string
  /** The `--json` document (empty when stdout is not one). */
  doc: Record<string, unknown>
}

/** A running bed. */
export interface TenantBed {
  ports: Ports
  /** `KEYLIME_DIR/cv_ca`. */
  cvCa: string
  agents: readonly SimAgent[]
  /** The control plane's output so far. */
  output(): string
  /** `keylime_tenant <args>` with the bed's environment plus `extra`. */
  tenant(args: string[], extra?: Record<string, string>): Promise<TenantRun>
  /** `-v 127.0.0.1 -t 127.0.0.1 -tp <port> -u <uuid>`: the arguments naming `agent`. */
  agentArgs(agent: SimAgent): string[]
  stop(): Promise<void>
}

/** Starts the control plane (with `KEYLIME_*` overrides in `env`) and `count` registered agents. */
export async function startTenantBed(o: {
  count: number
  seed: string
  env?: Record<string, string>
  /** Agent `i`'s enabled API versions (default all). */
  agentApiVersions?: (i: number) => readonly string[] | undefined
  /** The CA certificates the agents trust for clients (default the cv_ca's `cacert.crt`). */
  agentTrustedCaPem?: string
}): Promise<TenantBed> {
  const base = await controlPlaneEnv()
  const cvCa = join(base.dir, 'cv_ca')
  const env: Record<string, string> = {
    ...base.env,
    KEYLIME_TENANT_REGISTRAR_PORT: String(base.ports.registrarTls),
    KEYLIME_TENANT_VERIFIER_PORT: String(base.ports.verifier),
    KEYLIME_TENANT_REQUIRE_EK_CERT: 'False',
    KEYLIME_TENANT_ACCEPT_TPM_SIGNING_ALGS: "['ecdsa', 'rsassa']",
    KEYLIME_TENANT_RETRY_INTERVAL: '0.2',
    KEYLIME_TENANT_EXPONENTIAL_BACKOFF: 'False',
    KEYLIME_TENANT_MAX_RETRIES: '2',
    KEYLIME_TENANT_REQUEST_TIMEOUT: '5',
    KEYLIME_CA_PASSWORD: 'keylime',
    ...o.env,
  }
  const cp: ChildRun = spawnCollect([process.execPath, MAIN_TS], env)
  let fleet: Fleet | undefined
  try {
    await cp.waitFor(/keylime control plane started/, 30_000)
    fleet = await startFleet({
      count: o.count,
      caCertPem: o.agentTrustedCaPem ?? readFileSync(join(cvCa, 'cacert.crt'), 'utf8'),
      listen: 'ports',
      seed: o.seed,
      apiVersions: o.agentApiVersions,
    })
    const reg = await fleet.registerAll(`http://127.0.0.1:${base.ports.registrar}`)
    if (reg.ok !== o.count) throw new Error(`registration failed: ${reg.firstError}`)
  } catch (err) {
    await fleet?.stop()
    await cp.stop()
    throw err
  }
  const running = fleet
  return {
    ports: base.ports,
    cvCa,
    agents: running.agents,
    output: cp.output,
    async tenant(args, extra = {}) {
      const { code, out, err } = await runTenant(args, { ...env, ...extra })
      let doc: Record<string, unknown> = {}
      try {
        doc = JSON.parse(out) as Record<string, unknown>
      } catch {
        // not a --json run
      }
      return { code, out, err, text: out + err, doc }
    },
    agentArgs: (agent) => [
      ...['-v', '127.0.0.1', '-t', '127.0.0.1', '-tp', String(agent.contactPort)],
      ...['-u', agent.uuid],
    ],
    async stop() {
      await running.stop()
      await cp.stop()
    },
  }
}
