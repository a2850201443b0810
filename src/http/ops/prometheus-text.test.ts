import { describe, expect, test } from 'bun:test'
import { Histogram } from './histogram.ts'
import { formatLabels, PrometheusText } from './prometheus-text.ts'

describe('PrometheusText', () => {
  test('counters and gauges: HELP, TYPE, one value or one per label set', () => {
    const text = new PrometheusText()
      .counter('x_total', 'Xs.', 3)
      .gauge('y', 'Ys by kind.', [
        [{ kind: 'a' }, 1],
        [{ kind: 'b' }, 2.5],
      ])
      .text()
    expect(text).toBe(
      [
        '# HELP x_total Xs.',
        '# TYPE x_total counter',
        'x_total 3',
        '# HELP y Ys by kind.',
        '# TYPE y gauge',
        'y{kind="a"} 1',
        'y{kind="b"} 2.5',
        '',
      ].join('\n'),
    )
  })

  test('label values are escaped (backslash, quote, newline)', () => {
    expect(formatLabels({})).toBe('')
    expect(formatLabels({ a: 'p\\q"r\ns', b: 'ok' })).toBe('{a="p\\\\q\\"r\\ns",b="ok"}')
  })

  test('histograms: cumulative buckets in seconds, le last among the labels, sum and count', () => {
    const h = new Histogram()
    for (const ms of [0.5, 3, 3, 20_000]) h.observe(ms)
    const text = new PrometheusText()
      .histogram('lat_seconds', 'Latency.', [[{ route: '/v2.6/agents' }, h]])
      .text()
    expect(text).toContain('# TYPE lat_seconds histogram')
    expect(text).toContain('lat_seconds_bucket{route="/v2.6/agents",le="0.001"} 1')
    expect(text).toContain('lat_seconds_bucket{route="/v2.6/agents",le="0.005"} 3')
    expect(text).toContain('lat_seconds_bucket{route="/v2.6/agents",le="10"} 3')
    expect(text).toContain('lat_seconds_bucket{route="/v2.6/agents",le="+Inf"} 4')
    expect(text).toContain('lat_seconds_sum{route="/v2.6/agents"} 20.0065')
    expect(text).toContain('lat_seconds_count{route="/v2.6/agents"} 4')
    const bare = new PrometheusText().histogram('h_seconds', 'H.', new Histogram()).text()
    expect(bare).toContain('h_seconds_bucket{le="+Inf"} 0')
    expect(bare).toContain('h_seconds_count 0')
  })
})
