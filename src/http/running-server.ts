/**
 * The {@link RunningServer} handle both listeners return (`serve.ts`,
 * `listen-optional-client-cert.ts`): its state, and a stop that drains, then closes.
 *
 * @module
 */
import type { Logger } from '../log/logger.ts'
import type { ListenerState, RunningServer } from './listener-types.ts'

/** How a listener stops: `drain` resolves `true` when `drainMs` ran out first. */
export interface ListenerStopping {
  drain(drainMs: number): Promise<boolean>
  close(): Promise<void>
}

/** The handle of a listener `name` bound at `url`, `port`. */
export function runningServer(
  where: { name: string; url: string; port: number; log: Logger },
  stopping: ListenerStopping,
): RunningServer {
  const { name, url, port, log } = where
  let state: ListenerState = 'serving'
  return {
    name,
    url,
    port,
    get state() {
      return state
    },
    async stop(drainMs: number) {
      if (state === 'serving') state = 'stopping'
      if (await stopping.drain(drainMs)) {
        log.warn(`${name}: in-flight requests did not finish within ${drainMs} ms; closing`)
      }
      await stopping.close()
      state = 'closed'
    },
  }
}
