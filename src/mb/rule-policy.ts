/**
 * Declarative custom measured-boot policies: JSON rule documents over decoded events, replacing
 * upstream Keylime's Python plug-ins (`measured_boot_imports`) — no code is loaded. The format is
 * documented in docs/measured-boot-policies.md.
 *
 * Each event (EV_NO_ACTION skipped unless `ignore_no_action` is false) goes to the first rule whose
 * `match` fits (PCR, event type, field regexes). The rule then rejects it (`action: "reject"`) or
 * requires a digest from `digests` and full regex matches of `fields`. `sequence` constrains the
 * ordered digests of all events the rule matched; `min`/`max` their number. Events no rule matches
 * get `default` (reject unless set to accept).
 *
 * @module
 */

import { compileTextMatcher, type TextMatcher } from '../protocol/linear-regex.ts'
import { MbError } from './errors.ts'
import { describeEvent, type EventView, eventView } from './event-view.ts'
import { EVENT_TYPE } from './event-types.ts'
import type { EventLog } from './parse-event-log.ts'

/** A compiled rule. */
interface Rule {
  id: string
  pcrs: Set<number> | null
  types: Set<string> | null
  matchFields: Array<[string, TextMatcher]>
  action: 'accept' | 'reject'
  digests: Array<Record<string, string>> | null
  fields: Array<[string, TextMatcher]>
  sequence: Array<Record<string, string>> | null
  min: number
  max: number
}

/** A compiled declarative policy. */
export interface RulePolicy {
  /** The policy name (`measured_boot_policy_name`). */
  name: string
  /** PCRs compared against the log and required in the quote. */
  relevantPcrs: number[]
  /** Action for events no rule matches. */
  defaultAction: 'accept' | 'reject'
  /** Skip EV_NO_ACTION events. */
  ignoreNoAction: boolean
  /** The rules, in order. */
  rules: Rule[]
}

const LIMITS = { rules: 1000, digests: 100_000, regex: 4096 } as const
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const HEXV = /^0x[0-9a-f]+$/
const FIELD = /^[A-Za-z][A-Za-z0-9]{0,31}$/
const BUILT_IN = new Set(['accept-all', 'reject-all', 'example'])

function bad(msg: string): never {
  throw new MbError('ERR_MB_POLICY', `measured-boot policy ${msg}`)
}
function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}
function only(o: Record<string, unknown>, keys: readonly string[], at: string): void {
  for (const k of Object.keys(o))
    if (!keys.includes(k)) bad(`${at} has unknown key ${JSON.stringify(k.slice(0, 40))}`)
}
/** A field pattern: matched against event text from the agent, so in linear time. */
function regex(x: unknown, at: string): TextMatcher {
  if (typeof x !== 'string' || x.length > LIMITS.regex)
    bad(`${at} is not a string of at most ${LIMITS.regex} characters`)
  try {
    return compileTextMatcher(x, 'full', 's')
  } catch {
    bad(`${at} is not a valid regular expression`)
  }
}
function fieldMap(x: unknown, at: string): Array<[string, TextMatcher]> {
  if (x === undefined) return []
  if (!isObj(x)) bad(`${at} is not an object`)
  return Object.entries(x).map(([k, v]) => {
    if (!FIELD.test(k)) bad(`${at} has a bad field name`)
    return [k, regex(v, `${at}.${k}`)]
  })
}
function digestList(x: unknown, at: string, budget: { n: number }): Array<Record<string, string>> {
  if (!Array.isArray(x)) bad(`${at} is not a list`)
  return x.map((d, i) => {
    if (!isObj(d) || Object.keys(d).length === 0) bad(`${at}[${i}] is not a digest object`)
    const out: Record<string, string> = {}
    for (const [alg, h] of Object.entries(d)) {
      if (typeof h !== 'string' || !HEXV.test(h) || h.length > 130)
        bad(`${at}[${i}].${alg} is not 0x-prefixed lowercase hex`)
      out[alg] = h.slice(2)
    }
    if (++budget.n > LIMITS.digests) bad(`has more than ${LIMITS.digests} digests`)
    return out
  })
}
function intSet(x: unknown, at: string, max: number): Set<number> | null {
  if (x === undefined) return null
  const xs = Array.isArray(x) ? x : [x]
  if (xs.length === 0 || xs.length > 32) bad(`${at} must have 1..32 entries`)
  return new Set(
    xs.map((v) => {
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > max)
        bad(`${at} has ${JSON.stringify(v)}, not 0..${max}`)
      return v as number
    }),
  )
}
function typeSet(x: unknown, at: string): Set<string> | null {
  if (x === undefined) return null
  const xs = Array.isArray(x) ? x : [x]
  if (xs.length === 0 || xs.length > 64) bad(`${at} must have 1..64 entries`)
  return new Set(
    xs.map((v) => {
      if (typeof v !== 'string' || !/^EV_[A-Z0-9_x]{1,40}$/.test(v))
        bad(`${at} has a bad event type`)
      return v
    }),
  )
}

/**
 * Validates and compiles a declarative policy document.
 *
 * @throws {MbError} `ERR_MB_POLICY` naming the offending key.
 */
export function compileRulePolicy(doc: unknown): RulePolicy {
  if (!isObj(doc)) bad('is not a JSON object')
  only(
    doc,
    ['name', 'description', 'relevant_pcrs', 'default', 'ignore_no_action', 'rules'],
    'document',
  )
  if (typeof doc.name !== 'string' || !NAME.test(doc.name))
    bad('name must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}')
  if (BUILT_IN.has(doc.name)) bad(`name ${doc.name} is a built-in policy`)
  const def = doc.default ?? 'reject'
  if (def !== 'accept' && def !== 'reject') bad('default must be "accept" or "reject"')
  const ignoreNoAction = doc.ignore_no_action ?? true
  if (typeof ignoreNoAction !== 'boolean') bad('ignore_no_action must be a boolean')
  if (!Array.isArray(doc.rules) || doc.rules.length > LIMITS.rules)
    bad(`rules must be a list of at most ${LIMITS.rules}`)
  const budget = { n: 0 }
  const rules = doc.rules.map((r: unknown, i: number): Rule => {
    const at = `rules[${i}]`
    if (!isObj(r)) bad(`${at} is not an object`)
    only(r, ['id', 'match', 'action', 'digests', 'fields', 'sequence', 'min', 'max'], at)
    const m = r.match ?? {}
    if (!isObj(m)) bad(`${at}.match is not an object`)
    only(m, ['pcr', 'type', 'fields'], `${at}.match`)
    const action = r.action ?? 'accept'
    if (action !== 'accept' && action !== 'reject') bad(`${at}.action must be "accept" or "reject"`)
    const id = r.id ?? at
    if (typeof id !== 'string' || id.length > 64)
      bad(`${at}.id must be a string of at most 64 characters`)
    const count = (x: unknown, name: string, dflt: number): number => {
      if (x === undefined) return dflt
      if (!Number.isInteger(x) || (x as number) < 0 || (x as number) > 1_000_000)
        bad(`${at}.${name} must be 0..1000000`)
      return x as number
    }
    const rule: Rule = {
      id,
      pcrs: intSet(m.pcr, `${at}.match.pcr`, 23),
      types: typeSet(m.type, `${at}.match.type`),
      matchFields: fieldMap(m.fields, `${at}.match.fields`),
      action,
      digests: r.digests === undefined ? null : digestList(r.digests, `${at}.digests`, budget),
      fields: fieldMap(r.fields, `${at}.fields`),
      sequence: r.sequence === undefined ? null : digestList(r.sequence, `${at}.sequence`, budget),
      min: count(r.min, 'min', 0),
      max: count(r.max, 'max', 1_000_000),
    }
    if (rule.min > rule.max) bad(`${at}.min is larger than max`)
    return rule
  })
  let relevant: number[]
  if (doc.relevant_pcrs === undefined) {
    const s = new Set<number>()
    for (const r of rules) for (const p of r.pcrs ?? []) s.add(p)
    relevant = [...s].sort((a, b) => a - b)
  } else {
    if (!Array.isArray(doc.relevant_pcrs)) bad('relevant_pcrs is not a list')
    relevant = [
      ...(intSet(
        doc.relevant_pcrs.length === 0 ? undefined : doc.relevant_pcrs,
        'relevant_pcrs',
        23,
      ) ?? []),
    ]
  }
  return { name: doc.name, relevantPcrs: relevant, defaultAction: def, ignoreNoAction, rules }
}

function digestMatch(v: EventView, good: Record<string, string>): boolean {
  for (const [alg, h] of Object.entries(good)) if (v.digests[alg] === h) return true
  return false
}
function fieldsReason(v: EventView, fields: Array<[string, TextMatcher]>): string {
  for (const [k, re] of fields) {
    const val = v.fields[k]
    if (val === undefined) return `has no field ${k}`
    if (!re.test(val))
      return `field ${k} ${JSON.stringify(val.slice(0, 200))} does not match ${re.source.slice(4, -2).slice(0, 200)}`
  }
  return ''
}
function matches(rule: Rule, v: EventView): boolean {
  if (rule.pcrs !== null && !rule.pcrs.has(v.pcr)) return false
  if (rule.types !== null && !rule.types.has(v.type)) return false
  for (const [k, re] of rule.matchFields) {
    const val = v.fields[k]
    if (val === undefined || !re.test(val)) return false
  }
  return true
}

/**
 * Evaluates a log against a compiled declarative policy: `''` when accepted, otherwise a reason
 * naming the event and rule.
 */
export function evaluateRulePolicy(policy: RulePolicy, log: EventLog): string {
  const matched: EventView[][] = policy.rules.map(() => [])
  for (const ev of log.events) {
    if (ev.type === EVENT_TYPE.EV_NO_ACTION && policy.ignoreNoAction) continue
    const v = eventView(ev)
    const i = policy.rules.findIndex((r) => matches(r, v))
    const rule = policy.rules[i]
    if (rule === undefined) {
      if (policy.defaultAction === 'reject') return `${describeEvent(v)} matches no rule`
      continue
    }
    const bucket = matched[i] as EventView[]
    bucket.push(v)
    const tag = `${describeEvent(v)} rule ${JSON.stringify(rule.id)}:`
    if (rule.action === 'reject') return `${tag} rejected`
    if (bucket.length > rule.max) return `${tag} matched more than ${rule.max} events`
    if (rule.digests !== null && !rule.digests.some((g) => digestMatch(v, g)))
      return `${tag} digest not allowed`
    const fr = fieldsReason(v, rule.fields)
    if (fr) return `${tag} ${fr}`
  }
  for (const [i, rule] of policy.rules.entries()) {
    const evs = matched[i] as EventView[]
    if (evs.length < rule.min)
      return `rule ${JSON.stringify(rule.id)}: matched ${evs.length} events, expected at least ${rule.min}`
    const seq = rule.sequence
    if (seq === null) continue
    for (let k = 0; k < Math.max(seq.length, evs.length); k++) {
      const v = evs[k]
      const g = seq[k]
      if (v === undefined)
        return `rule ${JSON.stringify(rule.id)}: sequence expects ${seq.length} events, the log has ${evs.length}`
      if (g === undefined)
        return `${describeEvent(v)} rule ${JSON.stringify(rule.id)}: beyond the ${seq.length}-event sequence`
      if (!digestMatch(v, g))
        return `${describeEvent(v)} rule ${JSON.stringify(rule.id)}: sequence[${k}] digest differs`
    }
  }
  return ''
}
