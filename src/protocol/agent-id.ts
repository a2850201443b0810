/**
 * The verifier's agent id rule (upstream `keylime/common/validators.py`, `[\w.-]`, at most 255
 * characters), shared by its API routes and the push-mode session bodies.
 *
 * @module
 */

/** Agent id rule of the verifier; policy names follow it too. */
export const AGENT_ID_RE = /^[\w.-]{1,255}$/
