import { expect, test } from 'bun:test'
import { BadRequest } from '../../errors.ts'
import { getLogger } from '../../log/logger.ts'
import { createApp } from '../create-app.ts'
import { envelopeResponse } from '../envelope.ts'
import { PrometheusText } from './prometheus-text.ts'
import { type RequestOutcome, RequestMetrics } from './request-metrics.ts'

test('timed by route pattern and method; every answer seen, refusals of the body limit too', async () => {
  const outcomes: RequestOutcome[] = []
  const metrics = new RequestMetrics((o) => outcomes.push(o))
  const app = createApp({ log: getLogger('test'), maxUploadSize: 16, requestMetrics: metrics })
  app.get('/v2.6/agents/:agent_id', () => envelopeResponse(200, 'Success'))
  app.post('/v2.6/agents/:agent_id', () => {
    throw new BadRequest('no')
  })

  expect((await app.request('/v2.6/agents/a')).status).toBe(200)
  expect((await app.request('/v2.6/agents/b/')).status).toBe(200)
  expect((await app.request('/v2.6/agents/c', { method: 'POST', body: '{}' })).status).toBe(400)
  const big = await app.request('/v2.6/agents/d', { method: 'POST', body: 'x'.repeat(64) })
  expect(big.status).toBe(413)
  expect((await app.request('/nowhere/123')).status).toBe(404)
  expect((await app.request('/v2.6/agents/e', { method: 'PROPFIND' })).status).toBe(404)

  const route = '/v2.6/agents/:agent_id'
  expect(outcomes.map((o) => [o.method, o.route, o.status])).toEqual([
    ['GET', route, 200],
    ['GET', route, 200],
    ['POST', route, 400],
    ['POST', route, 413],
    ['GET', 'unmatched', 404],
    ['OTHER', 'unmatched', 404],
  ])
  expect(outcomes[2]?.error).toBeInstanceOf(BadRequest)
  expect(outcomes[3]?.error).toBeUndefined() // the limit answers without a handler error

  const w = new PrometheusText()
  metrics.write(w, 'req_seconds')
  const text = w.text()
  expect(text).toContain(`req_seconds_count{route="${route}",method="GET"} 2`)
  expect(text).toContain(`req_seconds_count{route="${route}",method="POST"} 2`)
  expect(text).toContain('req_seconds_count{route="unmatched",method="GET"} 1')
  expect(text).toContain('req_seconds_count{route="unmatched",method="OTHER"} 1')
  expect(text).not.toContain('/v2.6/agents/a')
})
