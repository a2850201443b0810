/**
 * Typed errors of a request to a peer (agent, registrar, verifier), shared by the agent client
 * (`agent-client/`) and the fetch-based client (`mtls-client.ts`).
 *
 * @module
 */
import { KeylimeError } from '../errors.ts'
import type { BodyLimitError } from './bounded-body.ts'

/** The peer could not be reached or did not complete TLS. */
export class PeerUnreachable extends KeylimeError {
  constructor(url: string, reason: string, cause?: unknown, code = 'ERR_PEER_UNREACHABLE') {
    super(code, `cannot reach ${url}: ${reason}`, { status: 502, cause })
    this.name = 'PeerUnreachable'
  }
}

/** The peer answered something that is not JSON (or too large). */
export class PeerBadResponse extends KeylimeError {
  constructor(url: string, reason: string, code = 'ERR_PEER_BAD_RESPONSE') {
    super(code, `unexpected response from ${url}: ${reason}`, { status: 502 })
    this.name = 'PeerBadResponse'
  }
}

/** The peer's answer is larger than the cap (`[verifier] max_agent_response_size`). */
export class PeerAnswerTooLarge extends PeerBadResponse {
  /** The cap (bytes). */
  readonly limit: number

  constructor(url: string, reason: string, limit: number) {
    super(url, reason, 'ERR_PEER_ANSWER_TOO_LARGE')
    this.name = 'PeerAnswerTooLarge'
    this.limit = limit
  }
}

/**
 * This process holds as many bytes of answers as it may (`[verifier] max_agent_response_buffer`):
 * the answer was dropped unread. Not the peer's fault; ask again later.
 */
export class AnswerBufferFull extends PeerUnreachable {
  constructor(url: string, reason: string) {
    super(url, reason, undefined, 'ERR_ANSWER_BUFFER_FULL')
    this.name = 'AnswerBufferFull'
  }
}

/** The peer error for an answer that hit a {@link BodyLimitError}. */
export function peerLimitError(
  url: string,
  e: BodyLimitError,
): PeerAnswerTooLarge | AnswerBufferFull {
  return e.code === 'ERR_ANSWER_TOO_LARGE'
    ? new PeerAnswerTooLarge(url, e.message, e.limit)
    : new AnswerBufferFull(url, e.message)
}
