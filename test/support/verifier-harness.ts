/**
 * Test and benchmark helpers: a verifier with a fresh cv_ca on 127.0.0.1, configured through
 * `KEYLIME_VERIFIER_*` overrides only (no files), on a database the caller opens.
 *
 * @module
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  ensureCvCa,
  loadTlsMaterial,
  resolveTlsFiles,
  type TlsMaterial,
} from '../../src/ca/index.ts'
import { resolveCaSettings } from '../../src/ca/ca-settings.ts'
import { loadVerifierConfig, type VerifierConfig } from '../../src/config/index.ts'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import { getLogger } from '../../src/log/logger.ts'
import {
  type StartVerifierOptions,
  startVerifier,
  type VerifierHandle,
} from '../../src/verifier/start-verifier.ts'

/** A cv_ca directory and the verifier's TLS material from it. */
export interface TestCa {
  keylimeDir: string
  caDir: string
  tls: TlsMaterial
}

/** Creates a cv_ca under a fresh `KEYLIME_DIR` (or `keylimeDir`). */
export async function createTestCa(
  keylimeDir = mkdtempSync(join(tmpdir(), 'kl-verifier-')),
): Promise<TestCa> {
  await ensureCvCa({ keylimeDir, settings: resolveCaSettings(), hostname: 'localhost' })
  const files = resolveTlsFiles({
    keylimeDir,
    tlsDir: 'generate',
    component: 'verifier',
    serverKey: 'default',
    serverKeyPassword: '',
    serverCert: 'default',
    clientKey: 'default',
    clientKeyPassword: '',
    clientCert: 'default',
    trustedCa: 'default',
  } as Parameters<typeof resolveTlsFiles>[0])
  return { keylimeDir, caDir: join(keylimeDir, 'cv_ca'), tls: await loadTlsMaterial(files) }
}

/** Loads a verifier config from `KEYLIME_VERIFIER_*`-style overrides (keys without the prefix). */
export function testVerifierConfig(overrides: Record<string, string> = {}): VerifierConfig {
  const env: Record<string, string> = {
    KEYLIME_VERIFIER_IP: '127.0.0.1',
    KEYLIME_VERIFIER_PORT: '0',
    KEYLIME_VERIFIER_QUOTE_INTERVAL: '0.5',
    KEYLIME_VERIFIER_RETRY_INTERVAL: '0.2',
    KEYLIME_VERIFIER_MAX_RETRIES: '2',
    KEYLIME_VERIFIER_REQUEST_TIMEOUT: '2',
  }
  for (const [k, v] of Object.entries(overrides)) env[`KEYLIME_VERIFIER_${k.toUpperCase()}`] = v
  const empty = mkdtempSync(join(tmpdir(), 'kl-etc-'))
  return loadVerifierConfig({ env, etcDir: empty, usrEtcDir: empty, warn: () => {} })
}

/** Starts a verifier on `database` with `ca`. */
export async function startTestVerifier(
  database: KeylimeDatabase,
  ca: TestCa,
  overrides: Record<string, string> = {},
  options: StartVerifierOptions = {},
): Promise<VerifierHandle> {
  return startVerifier(
    {
      config: testVerifierConfig(overrides),
      keylimeDir: ca.keylimeDir,
      database,
      tls: ca.tls,
      log: getLogger('verifier'),
    },
    options,
  )
}
