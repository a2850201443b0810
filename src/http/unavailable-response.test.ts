import { afterAll, expect, test } from 'bun:test'
import { BadRequest } from '../errors.ts'
import { getLogger, setLogSink } from '../log/logger.ts'
import { createApp } from './create-app.ts'

const lines: string[] = []
const restore = setLogSink((l) => lines.push(l), false)
afterAll(() => {
  setLogSink(restore)
})

const refused = () =>
  Object.assign(new Error('Failed query: select "v" from "verifiermain"\nparams: SECRET'), {
    params: ['SECRET'],
    cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
      code: 'ECONNREFUSED',
    }),
  })

test('a database outage anywhere in a handler: 503 envelope, Retry-After, one log line', async () => {
  const app = createApp({ log: getLogger('verifier') })
  app.get('/down', () => {
    throw refused()
  })
  app.get('/typed', () => {
    throw new BadRequest('bad input', { cause: refused() })
  })
  for (let i = 0; i < 20; i++) {
    const res = await app.request('/down')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('5')
    expect(await res.json()).toEqual({
      code: 503,
      status: 'Service Unavailable: database unavailable',
      results: {},
    })
  }
  expect((await app.request('/typed')).status).toBe(400) // a typed 4xx stands
  expect(lines).toHaveLength(1)
  expect(lines[0]).toContain('WARNING - database unavailable; requests answered 503')
  expect(lines[0]).toContain('ECONNREFUSED')
  expect(lines[0]).not.toContain('SECRET')
})
