/**
 * Request latency by route and method for a role's `/metrics`, measured by a middleware that
 * `createApp` installs before every other one (so refusals of the body limit count too).
 *
 * The label set is bounded: `route` is the pattern of the route table that matched
 * (`/v2.6/agents/:agent_id`), never the raw path, or `unmatched`; `method` is one of the HTTP
 * methods the routes use, or `OTHER`.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from 'hono'
import { matchedRoutes } from 'hono/route'
import { Histogram } from './histogram.ts'
import type { PrometheusText } from './prometheus-text.ts'

/** What the middleware learnt of one answered request. */
export interface RequestOutcome {
  /** The matched route pattern, or `unmatched`. */
  route: string
  /** The request method, or `OTHER`. */
  method: string
  /** The status answered. */
  status: number
  /** The error a handler threw (mapped to the answer by the app's `onError`), if any. */
  error: unknown
}

/** Methods kept as a label value; any other is counted as `OTHER`. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])

/** The route-table pattern that answered `c` (middleware, registered for `ALL`, excluded). */
function routeOf(c: Context): string {
  const routes = matchedRoutes(c)
  for (let i = routes.length - 1; i >= 0; i--) {
    const r = routes[i]
    if (r !== undefined && r.method !== 'ALL') return r.path
  }
  return 'unmatched'
}

/** Latency histograms of one role's listeners, and a hook on every answer. */
export class RequestMetrics {
  readonly #latency = new Map<string, { labels: { route: string; method: string }; h: Histogram }>()
  readonly #onOutcome: ((o: RequestOutcome) => void) | undefined

  /** @param onOutcome told of every answered request (e.g. to count failures by reason) */
  constructor(onOutcome?: (o: RequestOutcome) => void) {
    this.#onOutcome = onOutcome
  }

  /** The middleware (install first; `createApp` does with its `requestMetrics` option). */
  readonly middleware: MiddlewareHandler = async (c, next) => {
    const t0 = performance.now()
    await next()
    const route = routeOf(c)
    const method = METHODS.has(c.req.method) ? c.req.method : 'OTHER'
    const key = `${method} ${route}`
    let series = this.#latency.get(key)
    if (series === undefined) {
      series = { labels: { route, method }, h: new Histogram() }
      this.#latency.set(key, series)
    }
    series.h.observe(performance.now() - t0)
    this.#onOutcome?.({ route, method, status: c.res.status, error: c.error })
  }

  /** Writes the latency histograms as `name` (labels `route`, `method`). */
  write(w: PrometheusText, name: string): void {
    w.histogram(
      name,
      'Time to answer a request, by route pattern and method.',
      [...this.#latency.values()].map((s) => [s.labels, s.h] as const),
    )
  }
}
