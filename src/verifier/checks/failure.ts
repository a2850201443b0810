/**
 * Failure events with severities (upstream `keylime/failure.py`, enhancement-46).
 *
 * An event id is `<component>[.<sub>…].<event>` (components `qoute_validation` — upstream's
 * spelling —, `pcr_validation`, `measured_boot`, `ima`, `internal`). Its severity label is the
 * first `severity_policy` rule whose regex fully matches the id; no match, an unknown label or an
 * irrecoverable event means the maximum label. A {@link Failure} keeps the first event of the
 * highest severity, which becomes `last_event_id` and the revocation's `event_id`.
 *
 * @module
 */

/** A severity label and its rank (index in `severity_labels`). */
export interface SeverityLabel {
  name: string
  severity: number
}

/** One failure event. */
export interface FailureEvent {
  event_id: string
  severity_label: SeverityLabel
  /** Upstream keeps the context as a JSON string; we keep the object and serialise on the wire. */
  context: Record<string, unknown>
  recoverable: boolean
}

/** Compiled `severity_labels` + `severity_policy`. */
export class SeverityRules {
  readonly labels: readonly SeverityLabel[]
  readonly max: SeverityLabel
  readonly #rules: { re: RegExp; label: string }[]
  readonly #byName: Map<string, SeverityLabel>

  /**
   * @param labels `severity_labels`, lowest first (default upstream's seven)
   * @param policy `severity_policy` rules `{event_id: regex, severity_label}`
   */
  constructor(
    labels: readonly string[] = [
      'info',
      'notice',
      'warning',
      'error',
      'critical',
      'alert',
      'emergency',
    ],
    policy: readonly { event_id: string; severity_label: string }[] = [],
  ) {
    const names = labels.length > 0 ? labels : ['emergency']
    this.labels = names.map((name, severity) => ({ name, severity }))
    this.#byName = new Map(this.labels.map((l) => [l.name, l]))
    this.max = this.labels[this.labels.length - 1] as SeverityLabel
    const rules = policy.length > 0 ? policy : [{ event_id: '.*', severity_label: this.max.name }]
    this.#rules = []
    for (const r of rules) {
      try {
        // Python `re.fullmatch`: anchor the whole pattern
        this.#rules.push({ re: new RegExp(`^(?:${r.event_id})$`), label: r.severity_label })
      } catch {
        // an invalid regex matches nothing (upstream would fail at start; we log via the caller)
      }
    }
  }

  /** The label for an event id. */
  match(eventId: string): SeverityLabel {
    for (const r of this.#rules) {
      if (r.re.test(eventId)) return this.#byName.get(r.label) ?? this.max
    }
    return this.max
  }
}

/** A collection of failure events of one attestation round. */
export class Failure {
  readonly events: FailureEvent[] = []
  recoverable = true
  highest: FailureEvent | undefined
  /** Events dropped when the list was capped on its way here (see {@link keptEvents}). */
  omitted = 0
  readonly #rules: SeverityRules

  constructor(rules: SeverityRules) {
    this.#rules = rules
  }

  /** True when anything failed. */
  get failed(): boolean {
    return !this.recoverable || this.events.length > 0
  }

  /**
   * Adds an event with a full id (`qoute_validation.invalid_hash_alg`). A string context becomes
   * `{message}` as upstream.
   */
  add(eventId: string, context: string | Record<string, unknown>, recoverable: boolean): void {
    let label = this.#rules.match(eventId)
    if (!recoverable) {
      this.recoverable = false
      label = this.#rules.max
    }
    const ev: FailureEvent = {
      event_id: eventId,
      severity_label: label,
      context: typeof context === 'string' ? { message: context } : context,
      recoverable,
    }
    if (this.highest === undefined || label.severity > this.highest.severity_label.severity) {
      this.highest = ev
    }
    this.events.push(ev)
  }

  /** Adds events produced by the IMA or MB stage (`{event_id, context, recoverable}`). */
  addAll(
    list: readonly { event_id: string; context: Record<string, unknown>; recoverable: boolean }[],
  ): void {
    for (const e of list) this.add(e.event_id, e.context, e.recoverable)
  }
}

/**
 * The events of `f` to pass on when at most about `max` may go (a worker's answer, an API
 * answer): the first `max`, plus the highest when it came later, so the verdict a receiver
 * rebuilds from them (`highest`) is the same. A hostile IMA list can yield one event per line.
 */
export function keptEvents(f: Failure, max: number): FailureEvent[] {
  if (f.events.length <= max) return f.events
  const kept = f.events.slice(0, max)
  if (f.highest !== undefined && !kept.includes(f.highest)) kept.push(f.highest)
  return kept
}
