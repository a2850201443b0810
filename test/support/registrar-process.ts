/**
 * A `keylime --registrar` child process for tests and benchmarks that measure the process itself
 * (RSS, CPU): its own KEYLIME_DIR with a cv_ca made beforehand (a registrar alone does not create
 * one), on embedded PGlite or on the PostgreSQL database `databaseUrl`.
 *
 * @module
 */
import { DEFAULT_CA_SETTINGS, ensureCvCa } from '../../src/ca/index.ts'
import {
  type ChildRun,
  controlPlaneEnv,
  MAIN_TS,
  type Ports,
  spawnCollect,
} from './control-plane-process.ts'

/** A started registrar process. */
export interface RegistrarProcess {
  run: ChildRun
  ports: Ports
  /** `http://127.0.0.1:<port>` of the plain (agent) port. */
  url: string
}

/** Starts the registrar and waits until it serves. */
export async function startRegistrarProcess(databaseUrl = ''): Promise<RegistrarProcess> {
  const { env, ports, dir } = await controlPlaneEnv()
  if (databaseUrl !== '') env.KEYLIME_REGISTRAR_DATABASE_URL = databaseUrl
  await ensureCvCa({ keylimeDir: dir, settings: { ...DEFAULT_CA_SETTINGS }, ip: '127.0.0.1' })
  const run = spawnCollect([process.execPath, MAIN_TS, '--registrar'], env)
  await run.waitFor(/keylime control plane started/, 30_000)
  const url = `http://127.0.0.1:${ports.registrar}`
  await fetch(`${url}/version`)
  return { run, ports, url }
}
