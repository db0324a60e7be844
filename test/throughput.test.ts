/**
 * `/stats` throughput: bytes per second over the last ten complete seconds, from the
 * connections' own byte counts (sampled, and read once more when a connection closes).
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { ThroughputMeter, trackThroughput } from '../src/throughput.ts'
import { startGateway } from './helpers/gateway.ts'

describe('ThroughputMeter', () => {
  it('averages the ten complete seconds before now; the current second and older ones do not count', () => {
    let now = 1_000_000_500
    const meter = new ThroughputMeter({ now: () => now })
    meter.add(1000, 10)
    assert.deepEqual(meter.rates(), { egress_bytes_per_second: 0, ingress_bytes_per_second: 0, window_seconds: 10 }, 'the current second is not complete')
    now += 1000
    meter.add(500, 0)
    assert.deepEqual(meter.rates(), { egress_bytes_per_second: 100, ingress_bytes_per_second: 1, window_seconds: 10 })
    now += 1000
    assert.equal(meter.rates().egress_bytes_per_second, 150)
    // Nine seconds later the first second (1000 bytes) has left the window.
    now += 9000
    assert.equal(meter.rates().egress_bytes_per_second, 50)
    // Its bucket is reused for a new second, not added to.
    meter.add(20, 0)
    now += 1000
    assert.equal(meter.rates().egress_bytes_per_second, 2)
    now += 60_000
    assert.equal(meter.rates().egress_bytes_per_second, 0)
  })
})

describe('trackThroughput', () => {
  it('counts the bytes of open connections when sampled and of closed ones once, on close', async () => {
    const body = Buffer.alloc(1 << 20, 'b')
    const server = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => res.end(body))
    })
    let now = 2_000_000_000
    const traffic = trackThroughput(server, { now: () => now, intervalMs: 0 })
    // Registered after the tracker's: when this sees a socket close, the tracker has counted it.
    const closed: Promise<unknown>[] = []
    server.on('connection', (socket) => closed.push(once(socket, 'close')))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const upload = Buffer.alloc(100_000, 'u')
    try {
      const fetchOnce = () =>
        new Promise<void>((resolve, reject) => {
          const req = http.request({ port, host: '127.0.0.1', method: 'POST', agent, headers: { 'Content-Length': upload.length } }, (res) => {
            res.resume()
            res.on('end', resolve)
          })
          req.on('error', reject)
          req.end(upload)
        })
      await fetchOnce()
      traffic.sample()
      traffic.sample() // a second sample of an idle connection adds nothing
      now += 1000
      const first = traffic.meter.rates()
      assert.ok(first.egress_bytes_per_second >= body.length / 10 && first.egress_bytes_per_second < (body.length + 1000) / 10, JSON.stringify(first))
      assert.ok(first.ingress_bytes_per_second >= upload.length / 10 && first.ingress_bytes_per_second < (upload.length + 1000) / 10, JSON.stringify(first))

      await fetchOnce()
      agent.destroy()
      assert.equal(closed.length, 1, 'one keep-alive connection')
      await Promise.all(closed)
      now += 1000
      const second = traffic.meter.rates()
      assert.ok(second.egress_bytes_per_second >= (2 * body.length) / 10 && second.egress_bytes_per_second < (2 * body.length + 2000) / 10, JSON.stringify(second))
      traffic.sample()
      assert.deepEqual(traffic.meter.rates(), second, 'a closed connection is not counted again')
    } finally {
      traffic.stop()
      server.close()
    }
  })

  it('/stats shows the rates next to the counters', async () => {
    const gw = await startGateway()
    try {
      const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { requests: number; throughput: Record<string, number> }
      assert.equal(typeof stats.requests, 'number')
      assert.deepEqual(Object.keys(stats.throughput).sort(), ['egress_bytes_per_second', 'ingress_bytes_per_second', 'window_seconds'])
      assert.equal(stats.throughput.window_seconds, 10)
      assert.ok(stats.throughput.egress_bytes_per_second! >= 0)
    } finally {
      await gw.close()
    }
  })
})
