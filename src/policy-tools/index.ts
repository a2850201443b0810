/**
 * `src/policy-tools`: `keylime policy …` and the legacy policy tools (`keylime_create_policy`,
 * `keylime_sign_runtime_policy`, `keylime_convert_runtime_policy`, `create_mb_refstate`): runtime
 * (IMA) policies from logs, file trees and initramfs images, measured-boot reference states from
 * UEFI event logs, and DSSE signing. Built on the pure `src/ima` and `src/mb` libraries; nothing
 * the verifier runs imports this folder.
 *
 * @module
 */

export { type CreateRefstateOptions, createRefstate, pythonReEscape } from './create-refstate.ts'
export { runCreateMbRefstate, runPolicyCreateMeasuredBoot } from './create-refstate-cli.ts'
export {
  type CreateRuntimePolicyOptions,
  createRuntimePolicy,
  legacyAllowlistText,
} from './create-runtime-policy.ts'
export {
  runLegacyConvertPolicy,
  runLegacyCreatePolicy,
  runLegacySignPolicy,
  runPolicyCreateRuntime,
  runPolicySignRuntime,
} from './runtime-policy-cli.ts'
