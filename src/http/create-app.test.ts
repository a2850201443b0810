import { describe, expect, test } from 'bun:test'
import { BadRequest, Conflict } from '../errors.ts'
import { getLogger, setLogSink } from '../log/logger.ts'
import { addVersionRoutes } from './add-version-routes.ts'
import { apiVersionOfPath, versionPrefixes } from './api-version.ts'
import { createApp } from './create-app.ts'
import type { Envelope } from './envelope.ts'
import { readJsonObject } from './read-json.ts'

/** The parsed envelope of a response. */
const envelope = async (res: Response): Promise<Envelope> => (await res.json()) as Envelope

const logged: string[] = []
setLogSink((l) => logged.push(l), false)

function app(maxUploadSize = 1024) {
  const a = createApp({ log: getLogger('test'), maxUploadSize })
  addVersionRoutes(a)
  a.post('/v2.6/echo', async (c) =>
    c.json({ code: 200, status: 'Success', results: await readJsonObject(c) }),
  )
  a.get('/v2/typed', () => {
    throw new Conflict('Agent of uuid x already exists')
  })
  a.get('/bad', () => {
    throw new BadRequest('bad thing')
  })
  a.get('/boom', () => {
    throw new Error('secret internal detail /etc/keylime/private.pem')
  })
  return a
}

describe('envelope and errors', () => {
  test('version routes answer upstream-shaped JSON', async () => {
    for (const path of ['/version', '/versions', '/v3', '/v3.0/']) {
      const res = await app().request(path)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toContain('application/json')
      const body = await envelope(res)
      expect(body).toEqual({
        code: 200,
        status: 'Success',
        results: {
          current_version: '2.6',
          supported_versions: ['1.0', '2.0', '2.1', '2.2', '2.3', '2.4', '2.5', '2.6', '3.0'],
        },
      })
    }
  })

  test('GET / redirects to /v3.0/ as upstream', async () => {
    const res = await app().request('/')
    expect(res.status).toBe(307)
    expect(res.headers.get('location')).toBe('/v3.0/')
  })

  test('unknown routes are 404 envelopes', async () => {
    const res = await app().request('/v2.6/nothing/here')
    expect(res.status).toBe(404)
    expect(await envelope(res)).toEqual({ code: 404, status: 'Not Found', results: {} })
  })

  test('typed errors map to their status and message', async () => {
    let res = await app().request('/v2/typed/')
    expect(res.status).toBe(409)
    expect(await envelope(res)).toEqual({
      code: 409,
      status: 'Agent of uuid x already exists',
      results: {},
    })
    res = await app().request('/bad')
    expect((await envelope(res)).code).toBe(400)
  })

  test('untyped errors are a generic 500; details only in the log', async () => {
    logged.length = 0
    const res = await app().request('/boom')
    expect(res.status).toBe(500)
    const text = await res.text()
    expect(text).not.toContain('secret internal detail')
    expect(JSON.parse(text)).toEqual({ code: 500, status: 'Internal Server Error', results: {} })
    expect(logged.join('\n')).toContain('secret internal detail')
  })
})

describe('request bodies', () => {
  const post = (body: string | ReadableStream, headers: Record<string, string> = {}) =>
    app().request('/v2.6/echo', { method: 'POST', body, headers })

  test('JSON without a content type is accepted (upstream tenant sends none)', async () => {
    const res = await post('{"a":1}')
    expect(res.status).toBe(200)
    expect((await envelope(res)).results).toEqual({ a: 1 })
  })

  test('malformed JSON → 400 envelope', async () => {
    const res = await post('{"a":', { 'content-type': 'application/json' })
    expect(res.status).toBe(400)
    const body = await envelope(res)
    expect(body.code).toBe(400)
    expect(body.status).toStartWith('Invalid JSON in request body')
  })

  test('non-object JSON and empty body → 400', async () => {
    expect((await post('[1,2]')).status).toBe(400)
    expect((await post('"x"')).status).toBe(400)
    expect((await post('')).status).toBe(400)
  })

  test('wrong content type → 415 envelope', async () => {
    const res = await post('a=1', { 'content-type': 'application/x-www-form-urlencoded' })
    expect(res.status).toBe(415)
    expect((await envelope(res)).code).toBe(415)
  })

  test('oversized body → 413 envelope, with and without Content-Length', async () => {
    const big = JSON.stringify({ x: 'y'.repeat(2000) })
    let res = await post(big, { 'content-type': 'application/json' })
    expect(res.status).toBe(413)
    expect((await envelope(res)).code).toBe(413)
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode('y'.repeat(300)))
        c.close()
      },
    })
    res = await app().request('/v2.6/echo', {
      method: 'POST',
      body: stream,
      duplex: 'half',
    } as RequestInit)
    expect(res.status).toBe(413)
  })
})

describe('api versions', () => {
  test('prefixes cover /v2, /v2.0 … /v2.6 and /v3, /v3.0', () => {
    expect(versionPrefixes(2)).toEqual([
      '/v2',
      '/v2.0',
      '/v2.1',
      '/v2.2',
      '/v2.3',
      '/v2.4',
      '/v2.5',
      '/v2.6',
    ])
    expect(versionPrefixes(3)).toEqual(['/v3', '/v3.0'])
  })

  test('the version a path names', () => {
    expect(apiVersionOfPath('/v2.3/agents/x')).toBe('2.3')
    expect(apiVersionOfPath('/v2/agents')).toBe('2.6')
    expect(apiVersionOfPath('/v3/')).toBe('3.0')
    expect(apiVersionOfPath('/v2.9/agents')).toBeUndefined()
    expect(apiVersionOfPath('/v1.0/agents')).toBeUndefined()
    expect(apiVersionOfPath('/agents')).toBeUndefined()
  })
})
