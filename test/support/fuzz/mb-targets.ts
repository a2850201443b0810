/**
 * Fuzz targets of the measured-boot library, shared by the fuzz test and `bench/fuzz-mb.ts`: the
 * event log parser (+ replay and event views), and the refstate / declarative-policy JSON
 * validators fed with mutated JSON text. Each throws only {@link MbError} on bad input.
 *
 * @module
 */

import { validateExampleRefstate } from '../../../src/mb/example-policy.ts'
import { eventView } from '../../../src/mb/event-view.ts'
import { parseEventLog } from '../../../src/mb/parse-event-log.ts'
import { replayEventLog } from '../../../src/mb/replay-event-log.ts'
import { compileRulePolicy, evaluateRulePolicy } from '../../../src/mb/rule-policy.ts'

/** Parses, replays and views every event of `bytes`. */
export function fuzzLogTarget(bytes: Uint8Array): number {
  const log = parseEventLog(bytes)
  replayEventLog(log)
  let n = 0
  for (const ev of log.events) n += Object.keys(eventView(ev).fields).length
  return n
}

const td = new TextDecoder()

/** Treats `bytes` as JSON text: invalid JSON is skipped; valid JSON goes through both validators. */
export function fuzzJsonTarget(
  bytes: Uint8Array,
  log: Parameters<typeof evaluateRulePolicy>[1],
): void {
  let doc: unknown
  try {
    doc = JSON.parse(td.decode(bytes))
  } catch {
    return
  }
  try {
    validateExampleRefstate(doc)
  } finally {
    evaluateRulePolicy(compileRulePolicy(doc), log)
  }
}
