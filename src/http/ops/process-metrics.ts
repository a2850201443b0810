/**
 * The process basics every role exposes on `/metrics`, under the names Prometheus client
 * libraries use (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `process_start_time_seconds`), so stock dashboards and alerts apply.
 *
 * @module
 */
import type { PrometheusText } from './prometheus-text.ts'

/** When this process started (s since the epoch). */
const START_TIME_S = Math.round(Date.now() / 1000 - process.uptime())

/** Writes the process basics into `w`. */
export function writeProcessMetrics(w: PrometheusText): void {
  const cpu = process.cpuUsage()
  w.counter(
    'process_cpu_seconds_total',
    'Total user and system CPU time spent in seconds.',
    (cpu.user + cpu.system) / 1e6,
  )
  w.gauge(
    'process_resident_memory_bytes',
    'Resident memory size in bytes.',
    process.memoryUsage.rss(),
  )
  w.gauge(
    'process_start_time_seconds',
    'Start time of the process since unix epoch in seconds.',
    START_TIME_S,
  )
}
