/**
 * A writer of the Prometheus text exposition format 0.0.4, by hand (no dependency), shared by the
 * verifier's and the registrar's `GET /metrics`: `# HELP` and `# TYPE` lines, then the samples;
 * label values escaped as the format requires (backslash, double quote, newline).
 *
 * @module
 */
import type { Histogram } from './histogram.ts'

/** `Content-Type` of an exposition in this format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4'

/** Label names and values of one sample. */
export type Labels = Readonly<Record<string, string>>

/** One sample: its labels and value. */
export type Sample = readonly [Labels, number]

const escapeValue = (s: string): string =>
  s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')

/** `{a="x",b="y"}`, or nothing for no labels. */
export function formatLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeValue(v)}"`)
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`
}

/**
 * Collects metric families and renders them as one exposition.
 *
 * @example
 * ```ts
 * const w = new PrometheusText()
 * w.counter('keylime_registrar_registrations_total', 'Registrations accepted.', 3)
 * w.histogram('keylime_registrar_http_request_seconds', 'Request latency.', [[{ route: '/version', method: 'GET' }, h]])
 * new Response(w.text(), { headers: { 'content-type': PROMETHEUS_CONTENT_TYPE } })
 * ```
 */
export class PrometheusText {
  readonly #lines: string[] = []

  /** A counter: one value, or one value per label set. */
  counter(name: string, help: string, samples: number | readonly Sample[]): this {
    return this.#family(name, help, 'counter', samples)
  }

  /** A gauge: one value, or one value per label set. */
  gauge(name: string, help: string, samples: number | readonly Sample[]): this {
    return this.#family(name, help, 'gauge', samples)
  }

  /** A histogram: one, or one per label set (`_bucket`, `_sum` and `_count`, in seconds). */
  histogram(
    name: string,
    help: string,
    series: Histogram | readonly (readonly [Labels, Histogram])[],
  ): this {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`)
    const all = Array.isArray(series) ? series : [[{}, series as Histogram] as const]
    for (const [labels, h] of all) {
      for (const [le, n] of h.buckets()) {
        this.#lines.push(`${name}_bucket${formatLabels({ ...labels, le })} ${n}`)
      }
      const l = formatLabels(labels)
      this.#lines.push(`${name}_sum${l} ${h.sum / 1000}`, `${name}_count${l} ${h.count}`)
    }
    return this
  }

  /** The exposition text, ending in a newline. */
  text(): string {
    return `${this.#lines.join('\n')}\n`
  }

  #family(
    name: string,
    help: string,
    type: 'counter' | 'gauge',
    samples: number | readonly Sample[],
  ): this {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    if (typeof samples === 'number') this.#lines.push(`${name} ${samples}`)
    else for (const [labels, v] of samples) this.#lines.push(`${name}${formatLabels(labels)} ${v}`)
    return this
  }
}
