/**
 * Client CPU of one connection from the verifier to an agent, as `agent-connections.ts` opens
 * it (Bun.connect, cv_ca client certificate with its RSA-2048 key, the agent's certificate as the
 * only CA, verification judged after the handshake, Bun's default key-exchange groups), for a
 * full TLS 1.3 handshake and a TLS 1.3 resumption; for comparison only, the same without the
 * ML-KEM-768 key share Bun's default groups add, and a TLS 1.2 resumption. The agent side (an
 * ECC P-256 certificate as rust-keylime makes, client certificates required) runs in a child
 * process, so the figures are the client's alone. They set `RESUME_COST` in `src/http/agent-client/connect-limiter.ts`.
 *
 *   bun bench/agent-handshake.ts [connections-per-run=2000] [runs=5]
 *
 * @module
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestCa } from '../test/support/verifier-harness.ts'
import { createAgentCert } from '../test/support/fleet/agent-cert.ts'

/**
 * Key-exchange groups without Bun's default hybrid X25519MLKEM768, for comparison: the pool
 * keeps Bun's default (see docs/benchmarks.md, Verifier, session 5).
 */
const X25519_GROUPS = 'X25519:P-256:P-384'

/** TLS 1.2 as the number Bun's `maxVersion` takes. */
const TLS1_2 = 0x0303

if (process.argv[2] === '--serve') {
  const dir = process.argv[3] as string
  const server = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    tls: {
      cert: readFileSync(join(dir, 'agent.crt'), 'utf8'),
      key: readFileSync(join(dir, 'agent.key'), 'utf8'),
      ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
      requestCert: true,
      rejectUnauthorized: true,
    },
    socket: {
      data(s) {
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n')
      },
    },
  })
  console.log(server.port)
} else {
  const perRun = Number(process.argv[2] ?? 2000)
  const runs = Number(process.argv[3] ?? 5)
  const dir = mkdtempSync(join(tmpdir(), 'kl-handshake-'))
  const ca = await createTestCa(join(dir, 'keylime'))
  const agent = await createAgentCert('agent')
  writeFileSync(join(dir, 'agent.crt'), agent.certPem)
  writeFileSync(join(dir, 'agent.key'), agent.keyPem, { mode: 0o600 })
  writeFileSync(join(dir, 'ca.crt'), ca.tls.ca.join('\n'))
  const server = Bun.spawn([process.execPath, import.meta.path, '--serve', dir], { stdout: 'pipe' })
  try {
    const reader = (server.stdout as ReadableStream<Uint8Array>).getReader()
    const port = Number(new TextDecoder().decode((await reader.read()).value).trim())

    let session: Buffer | undefined
    /** One connection: handshake, one request, answer, close; `groups` undefined: Bun's default. */
    const connectOnce = (resume: boolean, groups: string | undefined, maxVersion?: number) =>
      new Promise<boolean>((resolve, reject) => {
        const tls = {
          cert: ca.tls.clientCert,
          key: ca.tls.clientKey,
          ca: [agent.certPem],
          rejectUnauthorized: false,
          ...(maxVersion !== undefined ? { maxVersion } : {}),
          ...(groups !== undefined ? { ecdhCurve: groups } : {}),
        }
        Bun.connect({
          hostname: '127.0.0.1',
          port,
          tls,
          socket: {
            open(s) {
              if (resume && session !== undefined) s.setSession(session)
            },
            handshake(s) {
              s.write('GET /version HTTP/1.1\r\nhost: agent\r\n\r\n')
            },
            data(s) {
              if (session === undefined || !resume) session = s.getSession() as unknown as Buffer
              const reused = s.isSessionReused()
              s.end()
              resolve(reused)
            },
            error(_s, err) {
              reject(err)
            },
            connectError(_s, err) {
              reject(err)
            },
          },
        }).catch(reject)
      })

    /** Median client CPU µs per connection over `runs` runs of 8 concurrent lanes. */
    const measure = async (resume: boolean, groups: string | undefined, maxVersion?: number) => {
      session = undefined
      for (let i = 0; i < 50; i++) await connectOnce(resume, groups, maxVersion)
      const perConn: number[] = []
      let reused = 0
      for (let r = 0; r < runs; r++) {
        let started = 0
        const c0 = process.cpuUsage()
        const lane = async () => {
          while (started < perRun) {
            started++
            if (await connectOnce(resume, groups, maxVersion)) reused++
          }
        }
        await Promise.all(Array.from({ length: 8 }, lane))
        const c = process.cpuUsage(c0)
        perConn.push(Math.round((c.user + c.system) / perRun))
      }
      perConn.sort((a, b) => a - b)
      return {
        client_cpu_us_median: perConn[Math.floor(perConn.length / 2)],
        runs: perConn,
        resumed_share: +(reused / (perRun * runs)).toFixed(3),
      }
    }

    const full = await measure(false, undefined)
    const resumed13 = await measure(true, undefined)
    const fullX = await measure(false, X25519_GROUPS)
    const resumed13X = await measure(true, X25519_GROUPS)
    const resumed12 = await measure(true, undefined, TLS1_2)
    console.log(
      JSON.stringify(
        {
          connections_per_run: perRun,
          full_tls13: full,
          resumed_tls13: resumed13,
          without_ml_kem: { groups: X25519_GROUPS, full_tls13: fullX, resumed_tls13: resumed13X },
          resumed_tls12: resumed12,
          resume_cost_tls13: +(
            (resumed13.client_cpu_us_median ?? 0) / (full.client_cpu_us_median ?? 1)
          ).toFixed(2),
        },
        null,
        1,
      ),
    )
  } finally {
    server.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}
