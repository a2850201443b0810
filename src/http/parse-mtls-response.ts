/**
 * A peer's answer as the clients return it: status, JSON body, and the Keylime envelope's
 * `results`.
 *
 * @module
 */
import { PeerBadResponse } from './peer-errors.ts'

/** A parsed response. `results` is the envelope's results when the body is an envelope. */
export interface MtlsResponse {
  status: number
  body: unknown
  results: unknown
}

/**
 * An answer's status and body text as an {@link MtlsResponse}: the JSON body, and its `results`
 * when it is a Keylime envelope (the whole body otherwise). An empty body gives nulls.
 *
 * @throws PeerBadResponse when the body is not JSON
 */
export function parseMtlsResponse(url: string, status: number, text: string): MtlsResponse {
  if (text === '') return { status, body: null, results: null }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new PeerBadResponse(url, `HTTP ${status} with a body that is not JSON`)
  }
  const results =
    typeof parsed === 'object' && parsed !== null && 'results' in parsed
      ? (parsed as { results: unknown }).results
      : parsed
  return { status, body: parsed, results }
}
