/**
 * `/health/ready` for balancers: 200 while serving, 503 from the moment shutdown begins,
 * while requests are still answered (with `Connection: close`, so keep-alive clients move).
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
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

  it('a request still running when the grace time is over is cut, and close() ends', async () => {
    const gw = await startGateway({ raw: { shutdown: { drain_seconds: 0, grace_seconds: 0.5 } } })
    const { port } = new URL(gw.url)
    const socket = net.connect(Number(port), '127.0.0.1')
    socket.on('error', () => {})
    await once(socket, 'connect')
    // An upload that stalls: it would hold shutdown for the whole rate window (30 s).
    // `Expect: 100-continue`: the interim answer shows the request is in the gateway's hands.
    socket.write(`PUT /local/stalled.bin HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${BEARER}\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n`)
    await once(socket, 'data')
    socket.write('hello')
    const started = performance.now()
    const socketClosed = once(socket, 'close')
    await gw.close({ drain: true })
    const took = performance.now() - started
    await socketClosed
    assert.ok(took >= 450 && took < 5_000, `closed after the grace time (${Math.round(took)} ms)`)
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
