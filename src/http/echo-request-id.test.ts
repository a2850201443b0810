import { describe, expect, test } from 'bun:test'
import { Hono } from 'hono'
import { echoRequestId } from './echo-request-id.ts'

describe('echoRequestId', () => {
  const app = new Hono()
  app.use('*', echoRequestId())
  app.get('/ok', (c) => c.json({}))
  app.get('/frozen', () => fetch('data:text/plain,x'))
  app.get('/boom', () => {
    throw new Error('boom')
  })
  app.onError((_e, c) => c.json({ error: true }, 500))
  const get = (path: string, rid?: string) =>
    app.request(path, { headers: rid === undefined ? {} : { 'x-request-id': rid } })

  test('echoes a plain id on answers, errors and immutable responses', async () => {
    for (const path of ['/ok', '/boom', '/frozen', '/missing'])
      expect((await get(path, 'a1b2c3')).headers.get('x-request-id')).toBe('a1b2c3')
  })

  test('drops ids that are not short and plain', async () => {
    expect((await get('/ok')).headers.get('x-request-id')).toBeNull()
    expect((await get('/ok', 'x'.repeat(65))).headers.get('x-request-id')).toBeNull()
    expect((await get('/ok', 'a b<script>')).headers.get('x-request-id')).toBeNull()
  })
})
