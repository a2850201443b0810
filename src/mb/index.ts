/**
 * Measured boot: UEFI (TCG PC Client) event log parsing and replay, the `example` reference state,
 * built-in and declarative policies and the verifier stage function. Pure library; the refstate
 * tools are `src/policy-tools`.
 *
 * @module
 */

export { comparePcrs, explainMismatch, type PcrMismatch } from './compare-pcrs.ts'
export {
  type DecodedEvent,
  decodeEvent,
  type LoadOption,
  type SpecIdAlgorithm,
} from './decode-event.ts'
export { describeSignature, type SignatureDescription } from './describe-signature.ts'
export { formatDevicePath } from './device-path.ts'
export { decodeUtf16z, formatGuid, toHex } from './efi-text.ts'
export { isMbError, MB_ERROR_CODES, MbError, type MbErrorCode } from './errors.ts'
export {
  evaluateMeasuredBoot,
  evaluateMeasuredBootEvidence,
  MEASUREDBOOT_PCRS,
  type MbClaims,
  type MbEvidenceInput,
  type MbFailure,
  type MbInput,
  type MbResult,
} from './evaluate-measured-boot.ts'
export {
  EFI_GUID,
  EVENT_TYPE,
  eventTypeName,
  eventTypeValue,
  LINUX_EVENT_TAG,
} from './event-types.ts'
export { describeEvent, type EventView, eventView } from './event-view.ts'
export {
  EXAMPLE_RELEVANT_PCRS,
  evaluateExample,
  type ExampleRefstate,
  validateExampleRefstate,
} from './example-policy.ts'
export {
  type EventDigest,
  type EventLog,
  parseEventLog,
  type ParseEventLogOptions,
  type UefiEvent,
} from './parse-event-log.ts'
export {
  ACCEPT_ALL,
  BUILT_IN_POLICY_NAMES,
  EXAMPLE,
  getPolicy,
  type MbPolicy,
  REJECT_ALL,
} from './policies.ts'
export {
  type PcrBanks,
  type ReplayResult,
  replayEventLog,
  startupLocality,
} from './replay-event-log.ts'
export { compileRulePolicy, evaluateRulePolicy, type RulePolicy } from './rule-policy.ts'
export { type EfiSignature, type EfiSignatureList, parseSignatureLists } from './signature-list.ts'
