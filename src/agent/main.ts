/**
 * `keylime-agent`: the slim Keylime agent entry point (built separately as
 * `dist/keylime-agent` by scripts/build-agent.sh). Reads `/etc/keylime/agent.conf` (+ `.d/`) and
 * `KEYLIME_AGENT_*`, opens the TPM given by `TCTI` (default `/dev/tpmrm0`), registers, serves
 * the agent API until SIGTERM/SIGINT — or, with `[agent] mode = push`, attests to
 * `verifier_url` on its own schedule and listens nowhere (src/agent/push). No X.509 library or `reflect-metadata` is bundled: the
 * mTLS certificate is written by create-self-signed-cert.ts.
 *
 * @module
 */
import { basename } from 'node:path'
import { getLogger } from '../log/logger.ts'
import { loadAgentConfig } from './config/load-agent-config.ts'
import { isAgentError } from './errors.ts'
import { startAgent } from './start-agent.ts'

const VERSION = '0.1.0'
const USAGE = `usage: keylime-agent [--config FILE] [--version] [--help]

The Keylime agent: pull model (agent API 2.1-2.6), or push model (API 3.0) with
[agent] mode = "push" (or KEYLIME_AGENT_MODE=push, or when installed as
keylime_push_model_agent) and verifier_url.
  --config FILE   agent.conf to read (default $KEYLIME_AGENT_CONFIG or /etc/keylime/agent.conf)
Environment: KEYLIME_AGENT_<OPTION> overrides an option; TCTI=device:/dev/tpmrm0 or
swtpm:host=H,port=P selects the TPM (TPM2TOOLS_TCTI is accepted too).
`

async function main(argv: string[]): Promise<number> {
  let file: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE)
      return 0
    }
    if (a === '--version' || a === '-V') {
      process.stdout.write(`keylime-agent ${VERSION}\n`)
      return 0
    }
    if (a === '--config' || a === '-c') file = argv[++i]
    else if (a.startsWith('--config=')) file = a.slice('--config='.length)
    else {
      process.stderr.write(`unknown argument: ${a}\n${USAGE}`)
      return 2
    }
  }
  const log = getLogger('agent')
  // listen for SIGTERM/SIGINT from the start, so a stop during start-up (registration retries)
  // still cleans up (the secure tmpfs) instead of killing the process
  const stopping = new AbortController()
  const onSignal = () => stopping.abort()
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)
  try {
    // installed (or linked) as rust-keylime's push agent name, push mode is the default
    const pushByName = /push[-_]model[-_]agent$/.test(basename(process.execPath))
    const env = pushByName
      ? { ...process.env, KEYLIME_AGENT_MODE: process.env.KEYLIME_AGENT_MODE ?? 'push' }
      : process.env
    const config = loadAgentConfig({ file, env, warn: (m) => log.warn(m) })
    log.info('configuration loaded', {
      files: config.files.join(',') || '(defaults)',
      mode: config.mode,
    })
    const agent = await startAgent(config, { signal: stopping.signal })
    if (!stopping.signal.aborted) {
      await new Promise((resolve) => stopping.signal.addEventListener('abort', resolve))
    }
    log.info('stopping')
    await agent.stop()
    return 0
  } catch (err) {
    if (isAgentError(err, 'ERR_AGENT_STOPPED')) {
      log.info(err.message)
      return 0
    }
    if (isAgentError(err)) {
      log.error(err.message, { code: err.code })
      return 1
    }
    log.error('agent failed', { error: err instanceof Error ? err.message : String(err) })
    return 1
  }
}

process.exit(await main(process.argv.slice(2)))
