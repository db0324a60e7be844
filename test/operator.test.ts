import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BEARER, type TestGateway, rawRequest, startGateway } from './helpers/gateway.ts'

describe('operator endpoints and method handling', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await writeFile(path.join(gw.root, 'x.txt'), 'x')
    await fetch(`${gw.url}/local/x.txt`, { headers: { Authorization: `Bearer ${BEARER}` } }).then((r) => r.arrayBuffer())
  })
  after(() => gw.close())

  it('/health, /stats and /metrics answer with real values', async () => {
    assert.deepEqual(await (await fetch(`${gw.url}/health`)).json(), { status: 'ok' })
    const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { requests: number; cache: { misses: number; tiers: { memory: { entries: number; bytes: number } } } }
    assert.ok(stats.requests >= 2)
    assert.equal(stats.cache.misses, 1)
    assert.equal(stats.cache.tiers.memory.entries, 1)
    assert.ok(stats.cache.tiers.memory.bytes > 1)
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    for (const name of [
      'cachegate_requests_total{method="GET",status="200"}',
      'cachegate_cache_requests_total{method="GET",result="miss"} 1',
      'cachegate_upstream_requests_total{store="local",op="get",outcome="ok"} 1',
      'cachegate_upstream_duration_seconds_bucket',
      'cachegate_cache_bytes{tier="memory"}',
      'cachegate_cache_entries{tier="memory"} 1',
      'cachegate_inflight_fills 0',
    ]) {
      assert.ok(metrics.includes(name), `missing ${name}`)
    }
    // Counters are copied in at scrape time: a hit between two scrapes adds exactly one.
    await fetch(`${gw.url}/local/x.txt`, { headers: { Authorization: `Bearer ${BEARER}` } }).then((r) => r.arrayBuffer())
    await fetch(`${gw.url}/metrics`).then((r) => r.text())
    const again = await (await fetch(`${gw.url}/metrics`)).text()
    assert.ok(again.includes('cachegate_cache_requests_total{method="GET",result="miss"} 1'))
    assert.ok(again.includes('cachegate_cache_requests_total{method="GET",result="hit"} 1'))
  })

  it('other methods get 405 with Allow; unknown paths 404', async () => {
    const object = await rawRequest(gw.url, 'DELETE', '/local/x.txt', { Authorization: `Bearer ${BEARER}` })
    assert.equal(object.status, 405)
    assert.equal(object.headers.allow, 'GET, HEAD, PUT')
    // A dot segment is refused first, whatever the method.
    assert.equal((await rawRequest(gw.url, 'DELETE', '/local/a/../x.txt', { Authorization: `Bearer ${BEARER}` })).status, 400)
    const info = await rawRequest(gw.url, 'POST', '/health')
    assert.equal(info.status, 405)
    assert.equal(info.headers.allow, 'GET, HEAD')
    assert.equal((await rawRequest(gw.url, 'GET', '/nothing-here')).status, 404)
    const head = await rawRequest(gw.url, 'HEAD', '/local/x.txt', { Authorization: `Bearer ${BEARER}` })
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-length'], '1')
    assert.equal(head.body.length, 0)
  })
})

describe('metrics.listen: /stats and /metrics on a second, private listener', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ raw: { metrics: { listen: '127.0.0.1:0' } } })
    await writeFile(path.join(gw.root, 'x.txt'), 'x')
    await fetch(`${gw.url}/local/x.txt`, { headers: { Authorization: `Bearer ${BEARER}` } }).then((r) => r.arrayBuffer())
  })
  after(() => gw.close())

  it('the public listener answers 404 for /stats and /metrics, and still serves /health and objects', async () => {
    assert.ok(gw.metricsUrl, 'the metrics listener URL is exposed')
    assert.notEqual(gw.metricsUrl, gw.url)
    for (const target of ['/metrics', '/stats']) {
      for (const method of ['GET', 'HEAD', 'POST']) {
        const res = await rawRequest(gw.url, method, target)
        assert.equal(res.status, 404, `${method} ${target}`)
        assert.ok(!res.body.toString().includes('cachegate_'), 'no metric text on the public listener')
      }
    }
    assert.deepEqual(await (await fetch(`${gw.url}/health`)).json(), { status: 'ok' })
    assert.equal((await rawRequest(gw.url, 'GET', '/local/x.txt', { Authorization: `Bearer ${BEARER}` })).status, 200)
  })

  it('the metrics listener serves /metrics, /stats and /health, and nothing else', async () => {
    const metrics = await fetch(`${gw.metricsUrl}/metrics`)
    assert.equal(metrics.status, 200)
    const text = await metrics.text()
    assert.ok(text.includes('cachegate_upstream_requests_total{store="local",op="get",outcome="ok"} 1'), text.slice(0, 500))
    const stats = (await (await fetch(`${gw.metricsUrl}/stats`)).json()) as { cache: { misses: number } }
    assert.equal(stats.cache.misses, 1)
    assert.deepEqual(await (await fetch(`${gw.metricsUrl}/health`)).json(), { status: 'ok' })
    assert.equal((await rawRequest(gw.metricsUrl!, 'POST', '/metrics')).status, 405)
    // Objects are not reachable on the metrics listener, with or without credentials.
    assert.equal((await rawRequest(gw.metricsUrl!, 'GET', '/local/x.txt', { Authorization: `Bearer ${BEARER}` })).status, 404)
  })

  it('close() stops both listeners', async () => {
    const other = await startGateway({ raw: { metrics: { listen: '127.0.0.1:0' } } })
    const metricsUrl = other.metricsUrl!
    assert.equal((await fetch(`${metricsUrl}/health`)).status, 200)
    await other.close()
    await assert.rejects(fetch(`${metricsUrl}/health`))
  })
})
