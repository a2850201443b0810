/**
 * What reading one large agent answer costs the verifier: a raw TLS server (`Bun.listen`, its own
 * process) answers `GET /v2.2/quotes/integrity` with an `ima_measurement_list` of the given size,
 * read through `AgentConnections` in a fresh process per answer; that process reports its CPU
 * time (`process.cpuUsage`), wall time and peak RSS. Framings: `cl` (Content-Length), `c16k`
 * (chunked, 16 KiB chunks), `c1` (chunked, 1-byte chunks: six bytes of framing per body byte).
 * Sizes are bytes on the wire.
 *
 * It then times, in one process, what follows the read for the largest size: `JSON.parse`, the
 * copy of the answer to a check worker (`postMessage`), and the IMA replay of the list
 * (`evaluateIma`, no policy), at half and full size, to show they grow linearly.
 *
 * Usage: bun bench/agent-response.ts [sizesMB=64,128,250] [framings=cl,c16k,c1] [--plain]
 *
 * To measure another tree (e.g. the code before the linear reader):
 *   git archive c9aa72c src | tar -x -C /tmp/kl-base
 *   AGENT_CONNECTIONS=/tmp/kl-base/src/verifier/agent-connections.ts bun bench/agent-response.ts
 *
 * @module
 */
import '../test/preload.ts'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createAgentCert } from '../test/support/fleet/agent-cert.ts'

const HERE = import.meta.path
const MB = 1_000_000

/** A valid ima-ng line (template hash over its template data), ~150-200 bytes. */
function imaLine(i: number): string {
  const path = `/usr/lib/python3.12/site-packages/pkg${i % 997}/module_${i}.cpython-312.pyc`
  const digest = createHash('sha256').update(path).digest()
  const len = Buffer.alloc(4)
  const data = [Buffer.from([40, 0, 0, 0]), Buffer.from('sha256:\0'), digest]
  len.writeUInt32LE(path.length + 1)
  data.push(len, Buffer.from(`${path}\0`))
  const th = createHash('sha1').update(Buffer.concat(data)).digest('hex')
  return `10 ${th} ima-ng sha256:${digest.toString('hex')} ${path}\n`
}

/** The JSON answer whose wire form (under `framing`) is about `wireBytes` long. */
function answerBody(wireBytes: number, framing: string): Buffer {
  const bodyBytes = framing === 'c1' ? Math.floor(wireBytes / 6) : wireBytes
  const lines: string[] = []
  let size = 200
  for (let i = 0; size < bodyBytes; i++) {
    const l = imaLine(i)
    lines.push(l)
    size += l.length + 1
  }
  const results = {
    quote: `r${'A'.repeat(400)}:${'B'.repeat(400)}:${'C'.repeat(200)}`,
    hash_alg: 'sha256',
    enc_alg: 'rsa',
    sign_alg: 'rsassa',
    ima_measurement_list: lines.join(''),
    ima_measurement_list_entry: 0,
    boottime: 1_700_000_000,
  }
  return Buffer.from(JSON.stringify({ code: 200, status: 'Success', results }))
}

function wire(body: Buffer, framing: string): Buffer {
  const head = (h: string) =>
    Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n${h}\r\n`)
  if (framing === 'cl') return Buffer.concat([head(`Content-Length: ${body.length}\r\n`), body])
  const size = framing === 'c1' ? 1 : 16 * 1024
  const parts: Buffer[] = [head('Transfer-Encoding: chunked\r\n')]
  if (size === 1) {
    const out = Buffer.allocUnsafe(body.length * 6)
    for (let i = 0, o = 0; i < body.length; i++, o += 6) {
      out[o] = 0x31 // '1'
      out[o + 1] = 13
      out[o + 2] = 10
      out[o + 3] = body[i] as number
      out[o + 4] = 13
      out[o + 5] = 10
    }
    parts.push(out)
  } else {
    for (let i = 0; i < body.length; i += size) {
      const c = body.subarray(i, i + size)
      parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'))
    }
  }
  parts.push(Buffer.from('0\r\n\r\n'))
  return Buffer.concat(parts)
}

/** Child: serves one answer per request until killed; prints its port. */
async function serve(dir: string, wireBytes: number, framing: string, plain: boolean) {
  const out = wire(answerBody(wireBytes, framing), framing)
  const small = Buffer.from(
    'HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\n{"results":{"api":"2.2"}}',
  )
  const tls = plain
    ? undefined
    : {
        cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
        key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      }
  const pending = new Map<unknown, Buffer>()
  const server = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    ...(tls ? { tls } : {}),
    socket: {
      data(s, req) {
        if (req.includes('/version')) return void s.write(small)
        const n = s.write(out)
        if (n < out.length) pending.set(s, out.subarray(Math.max(0, n)))
      },
      drain(s) {
        const rest = pending.get(s)
        if (rest === undefined) return
        const n = s.write(rest)
        if (n < rest.length) pending.set(s, rest.subarray(Math.max(0, n)))
        else pending.delete(s)
      },
      close(s) {
        pending.delete(s)
      },
    },
  })
  console.log(JSON.stringify({ port: server.port, wire: out.length }))
}

/** Child: reads one answer and prints what it cost. */
async function read(dir: string, port: number, plain: boolean) {
  const mod =
    process.env.AGENT_CONNECTIONS ??
    resolve(HERE, '../../src/http/agent-client/agent-connections.ts')
  const { AgentConnections } = await import(mod)
  const pool = new AgentConnections({ timeoutMs: 600_000, maxResponseBytes: 1024 * 1024 * 1024 })
  const target = {
    ip: '127.0.0.1',
    port,
    https: !plain,
    pinnedCert: plain ? undefined : readFileSync(join(dir, 'cert.pem'), 'utf8'),
  }
  await pool.request(target, { path: '/version' }).catch(() => undefined) // connect, warm up
  const rss0 = process.memoryUsage().rss
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  let ok = true
  try {
    await pool.request(target, { path: '/v2.2/quotes/integrity?nonce=x&mask=0x1' })
  } catch (err) {
    ok = false
    console.error(String(err))
  }
  const cpu = process.cpuUsage(c0)
  const r = {
    ok,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    userMs: Math.round(cpu.user / 1000),
    wallMs: Math.round(performance.now() - t0),
    rss0MB: Math.round(rss0 / MB),
    peakRssMB: Math.round((process.resourceUsage().maxRSS * 1024) / MB),
  }
  pool.close()
  console.log(JSON.stringify(r))
  process.exit(0)
}

async function runChild(args: string[]): Promise<Record<string, unknown>> {
  const p = Bun.spawn([process.execPath, HERE, ...args], { stdout: 'pipe', stderr: 'inherit' })
  const text = await new Response(p.stdout).text()
  await p.exited
  return JSON.parse(text.trim().split('\n').pop() as string)
}

/** What follows the read, timed in this process at half and full size. */
async function afterRead(wireBytes: number) {
  const { evaluateIma } = await import('../src/ima/index.ts')
  for (const size of [wireBytes / 2, wireBytes]) {
    const body = answerBody(size, 'cl')
    let c = process.cpuUsage()
    const text = body.toString('utf8')
    const parsed = JSON.parse(text) as { results: { ima_measurement_list: string } }
    const parseMs = cpuMs(c)
    const list = parsed.results.ima_measurement_list
    c = process.cpuUsage()
    const worker = new Worker(
      URL.createObjectURL(new Blob(['onmessage = (e) => postMessage(e.data.length)'])),
    )
    const got = await new Promise<number>((res) => {
      worker.onmessage = (e) => res(e.data as number)
      worker.postMessage(list)
    })
    worker.terminate()
    const cloneMs = cpuMs(c)
    c = process.cpuUsage()
    const r = evaluateIma({
      list,
      startEntry: 0,
      state: undefined,
      quotedPcr10: new Uint8Array(32),
      bank: 'sha256',
      policy: null,
    })
    const imaMs = cpuMs(c)
    console.log(
      `  ${(size / MB).toFixed(0)} MB: toString+JSON.parse ${parseMs} ms CPU, copy to a worker ` +
        `${cloneMs} ms (${got === list.length ? 'ok' : 'short'}), evaluateIma ${imaMs} ms ` +
        `(${r.ok === false ? r.failures.length : 0} failures, ${list.length} chars)`,
    )
  }
}

function cpuMs(c: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(c)
  return Math.round((d.user + d.system) / 1000)
}

async function main() {
  const [role, ...rest] = process.argv.slice(2)
  if (role === 'serve')
    return serve(rest[0] as string, Number(rest[1]), rest[2] as string, rest[3] === 'plain')
  if (role === 'read') return read(rest[0] as string, Number(rest[1]), rest[2] === 'plain')
  const args = process.argv.slice(2)
  const plain = args.includes('--plain')
  const pos = args.filter((a) => !a.startsWith('--'))
  const sizes = (pos[0] ?? '64,128,250').split(',').map(Number)
  const framings = (pos[1] ?? 'cl,c16k,c1').split(',')
  const dir = mkdtempSync(join(tmpdir(), 'kl-bench-answer-'))
  const cert = await createAgentCert('bench-agent')
  writeFileSync(join(dir, 'cert.pem'), cert.certPem)
  writeFileSync(join(dir, 'key.pem'), cert.keyPem)
  console.log(
    `agent-connections: ${process.env.AGENT_CONNECTIONS ?? 'this tree'}; ${plain ? 'plain TCP' : 'TLS'}; ` +
      `Bun ${Bun.version}`,
  )
  for (const framing of framings) {
    for (const size of sizes) {
      const server = Bun.spawn(
        [process.execPath, HERE, 'serve', dir, String(size * MB), framing, plain ? 'plain' : 'tls'],
        { stdout: 'pipe', stderr: 'inherit' },
      )
      const reader = server.stdout.getReader()
      const first = new TextDecoder().decode((await reader.read()).value)
      const { port, wire: wireLen } = JSON.parse(first) as { port: number; wire: number }
      const r = await runChild(['read', dir, String(port), plain ? 'plain' : 'tls'])
      server.kill()
      console.log(
        `${framing.padEnd(5)} ${String(size).padStart(4)} MB (${(wireLen / MB).toFixed(1)} MB on the wire): ` +
          `${r.ok ? 'read' : 'FAILED'}, CPU ${r.cpuMs} ms (user ${r.userMs}), wall ${r.wallMs} ms, ` +
          `RSS ${r.rss0MB} → peak ${r.peakRssMB} MB`,
      )
    }
  }
  if (process.env.AGENT_CONNECTIONS === undefined) {
    console.log('after the read (this process):')
    await afterRead(Math.max(...sizes) * MB)
  }
}

await main()
