/**
 * `src/ima`: IMA measurement lists, runtime policies and the verifier's IMA stage. Pure library:
 * no HTTP, no database, no argument parsing (the runtime-policy tools are `src/policy-tools`).
 *
 * @module
 */

export { AsciiEntryParser } from './ascii-entry-parser.ts'
export {
  type CompiledRuntimePolicy,
  compileRuntimePolicy,
  type LoadPolicyOptions,
  loadRuntimePolicy,
  parseRuntimePolicyDocument,
} from './compile-runtime-policy.ts'
export { isDsseEnvelope, parseDsseEnvelope, signDsse, verifyDsseEnvelope } from './dsse.ts'
export { ImaError, type ImaErrorCode, isImaError } from './errors.ts'
export {
  type EvaluateImaInput,
  type EvaluateImaResult,
  evaluateIma,
  evaluateImaEvidence,
  type ImaFailure,
  type ImaStageConfig,
} from './evaluate-ima.ts'
export {
  type ImaAgentState,
  type ImaAgentStateJson,
  imaStateFromJSON,
  imaStateToJSON,
  initialImaState,
} from './ima-agent-state.ts'
export { IMA_TEMPLATES, type ImaEntry, type ImaTemplate } from './ima-entry.ts'
export { getPubkey, ImaKeyring, keyIdV2, verifyImaSignature } from './ima-keyring.ts'
export { forEachLine, parseAsciiList } from './parse-ascii-list.ts'
export { binaryListToAscii, entryToAsciiLine, parseBinaryList } from './parse-binary-list.ts'
export { type PolicyLease, PolicyCache } from './policy-cache.ts'
export { type ImaReplay, replayImaList } from './replay-ima-list.ts'
export { compileExcludeList } from './python-regex.ts'
export { emptyRuntimePolicy, type RuntimePolicy, validateRuntimePolicy } from './runtime-policy.ts'
