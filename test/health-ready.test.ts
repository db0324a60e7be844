/**
 * `/health/ready` for balancers: 200 while serving, 503 from the moment shutdown begins,
 * while requests are still answered (with `Connection: close`, so keep-alive clients move).
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, it } from 'node:test'
import { BEARER, rawRequest, startGateway } from './helpers/gateway.ts'

describe('/health/ready', () => {
  it('is 200 when serving, 503 while draining; /health stays 200; draining answers close their connection', async () => {
    const gw = await startGateway({ raw: { shutdown: { drain_seconds: 2, grace_seconds: 1 } } })
    await writeFile(path.join(gw.root, 'x.txt'), 'x')
    const ready = await rawRequest(gw.url, 'GET', '/health/ready')
    assert.equal(ready.status, 200)
    assert.deepEqual(JSON.parse(ready.body.toString()), { status: 'ready' })
    const before = await rawRequest(gw.url, 'GET', '/local/x.txt', { Authorization: `Bearer ${BEARER}`, Connection: 'keep-alive' })
    assert.equal(before.headers.connection, 'keep-alive')
    assert.equal((await rawRequest(gw.url, 'POST', '/health/ready')).status, 405)

    const closing = gw.close({ drain: true })
    try {
      const draining = await rawRequest(gw.url, 'GET', '/health/ready')
      assert.equal(draining.status, 503)
      assert.deepEqual(JSON.parse(draining.body.toString()), { status: 'draining' })
      assert.equal((await rawRequest(gw.url, 'GET', '/health')).status, 200, 'liveness is unchanged')
      // Still serving, but telling the client to reconnect elsewhere.
      const object = await rawRequest(gw.url, 'GET', '/local/x.txt', { Authorization: `Bearer ${BEARER}`, Connection: 'keep-alive' })
      assert.equal(object.status, 200)
      assert.equal(object.body.toString(), 'x')
      assert.equal(object.headers.connection, 'close')
      assert.equal(draining.headers.connection, 'close')
    } finally {
      await closing
    }
    await assert.rejects(rawRequest(gw.url, 'GET', '/health/ready'), /ECONNREFUSED/, 'closed once the drain is over')
  })

  it('the metrics listener serves it too', async () => {
    const gw = await startGateway({ raw: { metrics: { listen: '127.0.0.1:0' } } })
    try {
      assert.equal((await rawRequest(gw.metricsUrl!, 'GET', '/health/ready')).status, 200)
      assert.equal((await rawRequest(gw.url, 'GET', '/health/ready')).status, 200)
    } finally {
      await gw.close()
    }
  })
})
