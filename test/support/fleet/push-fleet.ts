/**
 * A fleet of {@link PushSimAgent}s on one event loop. No timer per agent: one 10 ms tick walks a
 * wheel of due rounds, and at most `maxInFlight` rounds run at once (the rest wait their turn and
 * count as late). Each agent starts at a random point of the first interval, then attests
 * `seconds_to_next_attestation` after each 202 (an error: after `retryMs`, default one interval),
 * as src/agent/push does.
 *
 * Lateness of a round = when its evidence was accepted (202) − when it was due (the previous 202
 * + `seconds_to_next_attestation`); it covers the wait for a slot, the session when one is needed
 * and both requests.
 *
 * @module
 */

import type { HashAlg } from '../../../src/tpm/constants.ts'
import { ImaLog } from './ima-log.ts'
import { type PushFault, type PushSimShared, PushSimAgent } from './push-sim-agent.ts'
import { SoftTpm, type SoftKeyType, generateSoftTpmKey } from './soft-tpm.ts'

/** A fault given to a fraction of the agents. */
export interface PushFaultSpec {
  fault: PushFault
  fraction: number
}

/** Options of {@link startPushFleet}. */
export interface PushFleetOptions {
  count: number
  keyType: SoftKeyType
  verifierUrl: string
  /** cv_ca `cacert.crt` PEM. */
  caCertPem: string
  /** Seconds between rounds before the first answer says otherwise. */
  intervalS: number
  /** IMA entries per round (0: no IMA list, no runtime policy). */
  imaPerRound?: number
  /** Rounds the IMA list can grow for (its size is 1 + imaPerRound × this). */
  imaRounds?: number
  faults?: readonly PushFaultSpec[]
  /** Rounds running at once (default 2,000). */
  maxInFlight?: number
}

const TICK_MS = 10

/** Latency samples, kept at 1 ms resolution in a histogram (bounded memory). */
export class LatenessHistogram {
  readonly #counts = new Map<number, number>()
  #n = 0
  add(ms: number): void {
    const k = Math.max(0, Math.round(ms))
    this.#counts.set(k, (this.#counts.get(k) ?? 0) + 1)
    this.#n++
  }
  get count(): number {
    return this.#n
  }
  quantile(q: number): number {
    if (this.#n === 0) return 0
    const keys = [...this.#counts.keys()].sort((a, b) => a - b)
    const target = Math.ceil(q * this.#n)
    let seen = 0
    for (const k of keys) {
      seen += this.#counts.get(k)!
      if (seen >= target) return k
    }
    return keys[keys.length - 1]!
  }
  reset(): void {
    this.#counts.clear()
    this.#n = 0
  }
  /** The report's figures: p50, p99, max (ms) and the sample count. */
  summary(): { p50: number; p99: number; max: number; n: number } {
    return { p50: this.quantile(0.5), p99: this.quantile(0.99), max: this.quantile(1), n: this.#n }
  }
}

/** A running push fleet. */
export interface PushFleet {
  agents: PushSimAgent[]
  imaLog: ImaLog | undefined
  /** Rounds accepted since start. */
  readonly accepted: number
  /** Errors by kind since the last {@link resetWindow}. */
  errors: Map<string, number>
  lateness: LatenessHistogram
  /** Per agent: time (ms) of its last 202. */
  lastAccepted: Float64Array
  /** Rounds running now. */
  readonly inFlight: number
  resetWindow(): void
  /** Schedules every agent but the silent ones within the first interval and starts the wheel. */
  start(): void
  stop(): void
}

/** Builds the agents (shared EK/AK/NK keys: signing costs the same); `start()` runs them. */
export function startPushFleet(o: PushFleetOptions): PushFleet {
  const hashAlg: HashAlg = 'sha256'
  const imaPerRound = o.imaPerRound ?? 0
  const imaLog =
    imaPerRound > 0 ? new ImaLog(1 + imaPerRound * (o.imaRounds ?? 300), [hashAlg]) : undefined
  const shared: PushSimShared = {
    verifierUrl: o.verifierUrl,
    tls: { ca: o.caCertPem, checkServerIdentity: () => undefined },
    ima: imaLog,
    imaPerRound,
  }
  const keys = {
    ek: generateSoftTpmKey(o.keyType),
    ak: generateSoftTpmKey(o.keyType),
    nk: generateSoftTpmKey('rsa'),
  }
  const faults: (PushFault | undefined)[] = new Array(o.count).fill(undefined)
  let next = 0
  for (const f of o.faults ?? []) {
    const n = Math.round(f.fraction * o.count)
    for (let i = 0; i < n && next < o.count; i++) faults[next++] = f.fault
  }
  const agents = Array.from({ length: o.count }, (_, i) => {
    const uuid = `d432fbb3-d2f1-4a97-9ef7-${i.toString(16).padStart(12, '0')}`
    return new PushSimAgent(uuid, new SoftTpm({ keys, hashAlg }), shared, faults[i])
  })

  const intervalMs = o.intervalS * 1000
  const maxInFlight = o.maxInFlight ?? 2000
  const due = new Float64Array(o.count)
  const lastAccepted = new Float64Array(o.count)
  const lateness = new LatenessHistogram()
  const errors = new Map<string, number>()
  let accepted = 0
  let inFlight = 0
  let stopped = false
  // the wheel: slot (ms / TICK_MS) → agent indices due then
  const wheel = new Map<number, number[]>()
  let ready: number[] = []
  let head = 0
  const schedule = (i: number, at: number) => {
    due[i] = at
    const slot = Math.ceil(at / TICK_MS)
    const list = wheel.get(slot)
    if (list === undefined) wheel.set(slot, [i])
    else list.push(i)
  }
  let lastSlot = 0
  let timer: ReturnType<typeof setInterval> | undefined
  const run = (i: number) => {
    inFlight++
    const agent = agents[i]!
    void agent.round().then((r) => {
      inFlight--
      const now = Date.now()
      if (r.kind === 'accepted') {
        accepted++
        if (lastAccepted[i]! > 0) lateness.add(now - due[i]!)
        lastAccepted[i] = now
        if (!stopped) schedule(i, now + r.nextMs)
      } else {
        errors.set(r.error, (errors.get(r.error) ?? 0) + 1)
        if (!stopped) schedule(i, now + (r.retryMs ?? intervalMs))
      }
      pump()
    })
  }
  const pump = () => {
    while (inFlight < maxInFlight && head < ready.length) run(ready[head++]!)
    if (head > 4096) {
      ready = ready.slice(head)
      head = 0
    }
  }
  const tick = () => {
    const nowSlot = Math.floor(Date.now() / TICK_MS)
    for (let s = lastSlot + 1; s <= nowSlot; s++) {
      const list = wheel.get(s)
      if (list === undefined) continue
      wheel.delete(s)
      for (const i of list) ready.push(i)
    }
    lastSlot = nowSlot
    pump()
  }

  return {
    agents,
    imaLog,
    get accepted() {
      return accepted
    },
    get inFlight() {
      return inFlight
    },
    errors,
    lateness,
    lastAccepted,
    resetWindow() {
      errors.clear()
      lateness.reset()
    },
    start() {
      const t0 = Date.now()
      for (let i = 0; i < o.count; i++) {
        if (faults[i] !== 'silent') schedule(i, t0 + Math.random() * intervalMs)
      }
      lastSlot = Math.floor(t0 / TICK_MS) - 1
      timer = setInterval(tick, TICK_MS)
    },
    stop() {
      stopped = true
      clearInterval(timer)
    },
  }
}
