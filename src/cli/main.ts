/**
 * The `keylime` binary's top level: resolves the invocation, runs it, maps failures to a message on
 * stderr and an exit code. Nothing below this prints stack traces to users.
 *
 * @module
 */
import type { ConfigLoadOptions } from '../config/index.ts'
import { isKeylimeError } from '../errors.ts'
import { describeError, stackFrames } from '../log/describe-error.ts'
import { getLogger } from '../log/logger.ts'
import pkg from '../../package.json' with { type: 'json' }
import type { ToolContext } from '../tool-context.ts'
import { resolveCommand } from './resolve-command.ts'
import { KEYLIME_USAGE } from './usage.ts'

/** Exit codes of the binary (tenant-specific codes are documented with the tenant). */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
} as const

/** Where the CLI writes; replaceable in tests. */
export interface CliIo {
  stdout: (s: string) => void
  stderr: (s: string) => void
  env: NodeJS.ProcessEnv
  config?: ConfigLoadOptions
}

const log = getLogger()

function toolContext(io: CliIo): ToolContext {
  return { stdout: { write: io.stdout }, stderr: { write: io.stderr }, cwd: process.cwd() }
}

/** A typed error's message as written; anything else as `describeError` makes it safe. */
function describeFailure(err: unknown): string {
  return isKeylimeError(err) ? err.message : describeError(err)
}

/*
 * Each command's modules are imported when that command runs, not before: the tenant and the tools
 * must start in milliseconds, without evaluating PGlite, the verifier or the X.509 stack they do
 * not use.
 */

/**
 * Runs one invocation. For the control plane it resolves once the servers are up and installs
 * SIGTERM/SIGINT handlers that stop them; other commands resolve with their exit code.
 */
export async function main(argv0: string, args: string[], io: CliIo): Promise<number | 'running'> {
  const command = resolveCommand(argv0, args)
  const configOpts: ConfigLoadOptions = {
    env: io.env,
    warn: (msg, fields) => log.warn(msg, fields),
    ...io.config,
  }
  try {
    switch (command.kind) {
      case 'help':
        io.stdout(KEYLIME_USAGE)
        return EXIT.OK
      case 'version':
        io.stdout(`keylime-ts ${pkg.version}\n`)
        return EXIT.OK
      case 'usage-error':
        io.stderr(`keylime: ${command.message}\n\n${KEYLIME_USAGE}`)
        return EXIT.USAGE
      case 'ca': {
        const [{ runCaCli }, { getKeylimeDir, loadCaConfig }] = await Promise.all([
          import('../ca/index.ts'),
          import('../config/index.ts'),
        ])
        return await runCaCli(command.args, {
          settings: loadCaConfig(configOpts).ca,
          keylimeDir: getKeylimeDir(io.env),
          stdout: io.stdout,
          stderr: io.stderr,
        })
      }
      case 'tenant': {
        const { runTenant } = await import('../tenant/run-tenant.ts')
        return await runTenant(command.args, io)
      }
      case 'health': {
        const { runHealth } = await import('./run-health.ts')
        return await runHealth(command.args, io)
      }
      case 'ear': {
        const { runEarCli } = await import('./run-ear.ts')
        return await runEarCli(command.args, io)
      }
      case 'policy': {
        const { runPolicyCommand } = await import('./run-policy-tool.ts')
        return await runPolicyCommand(command.args, toolContext(io))
      }
      case 'tool': {
        if (command.tool === 'keylime_userdata_encrypt') {
          const { runUserdataEncrypt } = await import('../tenant/userdata-encrypt.ts')
          return runUserdataEncrypt(command.args, io)
        }
        const { runLegacyTool } = await import('./run-policy-tool.ts')
        return await runLegacyTool(command.tool, command.args, toolContext(io))
      }
      case 'control-plane': {
        const started = performance.now()
        // Signal handlers go in before anything starts: a SIGTERM during start-up then stops the
        // control plane as soon as it is up instead of killing it half-way.
        let plane: { stop(): Promise<void> } | undefined
        let signals = 0
        const shutdown = () => {
          if (!plane) return
          log.info('draining and shutting down')
          plane.stop().then(
            () => {
              log.info('shutdown complete')
              process.exit(EXIT.OK)
            },
            (err) => {
              log.error('shutdown failed', { error: err })
              process.exit(EXIT.FAILURE)
            },
          )
        }
        const onSignal = (signal: string) => {
          signals += 1
          if (signals > 1) {
            log.warn(`second ${signal}: exiting without draining`)
            process.exit(EXIT.FAILURE)
          }
          log.info(`${signal} received`)
          shutdown()
        }
        process.on('SIGTERM', () => onSignal('SIGTERM'))
        process.on('SIGINT', () => onSignal('SIGINT'))
        const [{ runControlPlane }, { installLastResortGuard }] = await Promise.all([
          import('./run-control-plane.ts'),
          import('./install-last-resort-guard.ts'),
        ])
        // a bug that escapes every typed path costs one round or request, not the process
        installLastResortGuard(log)
        const running = await runControlPlane({ roles: command.roles, config: configOpts })
        plane = running
        const roles = Object.entries(command.roles)
          .filter(([, on]) => on)
          .map(([r]) => r)
        log.info('keylime control plane started', {
          roles: roles.join(','),
          keylime_dir: running.keylimeDir,
          ms: Math.round(performance.now() - started),
        })
        if (signals > 0) shutdown()
        return 'running'
      }
    }
  } catch (err) {
    io.stderr(`keylime: ${describeFailure(err)}\n`)
    if (!isKeylimeError(err)) log.debug('failure detail', { stack: stackFrames(err, 8) })
    return EXIT.FAILURE
  }
}
