/**
 * A hostile "agent" for end-to-end tests: a small mTLS server (client certificates from the
 * verifier's CA required, as rust-keylime does) that answers `GET /version`,
 * `GET /v*\/quotes/integrity` and `POST /v*\/keys/vkey` with whatever the test supplies, so a test can
 * enrol it like any agent (its certificate is the `mtls_cert`) and watch what the verifier does with
 * each hostile answer.
 *
 * @module
 */
import { constants } from 'node:crypto'

/** The query of one `quotes/integrity` request. */
export interface QuoteQuery {
  nonce: string
  mask: string
  partial: string
  /** `ima_ml_entry`, or null when absent. */
  imaEntry: string | null
}

/** Options of {@link startHostileAgent}. */
export interface HostileAgentOptions {
  /** CA (PEM) the verifier's client certificate must chain to. */
  caCertPem: string
  /** The agent's server certificate and key (PEM); register the certificate as `mtls_cert`. */
  certPem: string
  keyPem: string
  /**
   * The `quotes/integrity` answer: `results` as JSON text (sent in a 200 envelope), or an envelope's
   * status code, status text and `results` JSON text.
   */
  answer(q: QuoteQuery): string | { status: number; text: string; results: string }
  /** `results` of `GET /version` as JSON text (default: API 2.1–2.6). */
  version?: string
}

/** A running hostile agent. */
export interface HostileAgent {
  port: number
  /** `quotes/integrity` requests answered. */
  quotes: number
  stop(): Promise<void>
}

const VERSIONS = JSON.stringify({
  supported_version: '2.6',
  supported_versions: ['2.1', '2.2', '2.3', '2.4', '2.5', '2.6'],
})

function envelope(status: number, text: string, resultsJson: string): Response {
  return new Response(
    `{"code":${status},"status":${JSON.stringify(text)},"results":${resultsJson}}`,
    {
      status,
      headers: { 'content-type': 'application/json' },
    },
  )
}

/** Starts a hostile agent on 127.0.0.1 (a kernel-chosen port). */
export function startHostileAgent(o: HostileAgentOptions): HostileAgent {
  const agent: HostileAgent = { port: 0, quotes: 0, stop: async () => {} }
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    tls: {
      key: o.keyPem,
      cert: o.certPem,
      ca: [o.caCertPem],
      requestCert: true,
      rejectUnauthorized: true,
      secureOptions: constants.SSL_OP_NO_TLSv1 | constants.SSL_OP_NO_TLSv1_1,
    },
    fetch: (req) => {
      const url = new URL(req.url)
      if (url.pathname === '/version') return envelope(200, 'Success', o.version ?? VERSIONS)
      if (/^\/v\d+\.\d+\/quotes\/integrity$/.test(url.pathname)) {
        agent.quotes++
        const q = url.searchParams
        const a = o.answer({
          nonce: q.get('nonce') ?? '',
          mask: q.get('mask') ?? '',
          partial: q.get('partial') ?? '',
          imaEntry: q.get('ima_ml_entry'),
        })
        return typeof a === 'string'
          ? envelope(200, 'Success', a)
          : envelope(a.status, a.text, a.results)
      }
      if (/^\/v\d+\.\d+\/keys\/vkey$/.test(url.pathname)) return envelope(200, 'Success', 'null')
      return envelope(400, 'Bad Request', '{}')
    },
  })
  agent.port = server.port ?? 0
  agent.stop = async () => {
    await server.stop(true)
  }
  return agent
}
