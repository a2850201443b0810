/**
 * Measures how a server's event loop fares while something else keeps it busy: `GET url` over
 * mTLS, one probe at a time every `everyMs`, until `busy` settles. A probe that waits behind a
 * blocked loop shows the whole wait.
 *
 * @module
 */

/** Client TLS material (PEM). */
export interface ProbeTls {
  ca: string | string[]
  cert: string
  key: string
}

/** Latency figures in ms. */
export interface LatencySummary {
  count: number
  p50: number
  p99: number
  max: number
}

/** p50/p99/max of `ms` (nearest rank). */
export function summarize(ms: readonly number[]): LatencySummary {
  const s = [...ms].sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? 0
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? 0 }
}

/** Probes `url` until `busy` settles; returns each probe's latency (ms). */
export async function probeWhile(
  url: string,
  tls: ProbeTls,
  busy: Promise<unknown>,
  everyMs = 20,
): Promise<number[]> {
  let done = false
  const stop = () => {
    done = true
  }
  busy.then(stop, stop)
  const out: number[] = []
  while (!done) {
    const t0 = performance.now()
    const res = await fetch(url, { tls: { ...tls, rejectUnauthorized: true } } as RequestInit)
    await res.arrayBuffer()
    if (res.status !== 200) throw new Error(`probe answered ${res.status}`)
    out.push(performance.now() - t0)
    await Bun.sleep(everyMs)
  }
  return out
}
