/**
 * Issue 14: several gateways behind the shipped deploy/nginx/cachegate.conf (`hash $uri
 * consistent`), each object owned by one gateway. Three in-process gateways share one s3rver
 * bucket through a counting proxy, so "one upstream GET per object across the fleet" is a
 * count, and nginx's access log says which gateway served each request, checked against the
 * ring model of bench/lib/nginx-ring.ts (which must place every key exactly as nginx does).
 * Failures (kill, death mid-response, SIGTERM) are in fleet-failover.test.ts.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { buildRing, ownerOf } from '../bench/lib/nginx-ring.ts'
import { generateKeyPair } from '../src/auth/keys.ts'
import { presign } from '../src/auth/presign.ts'
import { createS3Store } from '../src/stores/s3.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { type S3rverHandle, startS3rver } from './helpers/emulators.ts'
import { BEARER, type TestGateway, rawRequest, startGateway } from './helpers/gateway.ts'
import { NGINX, type NginxFront, startNginxFront } from './helpers/nginx-front.ts'
import { prng } from './helpers/prng.ts'

const MiB = 1024 * 1024
const keys = generateKeyPair()
const hostOf = (url: string) => new URL(url).host

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++
        results[i] = await fn(items[i]!, i)
      }
    }),
  )
  return results
}

interface Fleet {
  s3: S3rverHandle
  proxy: CountingProxy
  seed(prefix: string, count: number, size: number): Promise<Map<string, Buffer>>
  gateway(cache: Record<string, unknown>, raw?: Record<string, unknown>): Promise<TestGateway>
  close(): Promise<void>
}

/** s3rver behind a counting proxy; gateways that read it through the proxy, with shared keys. */
async function startFleet(): Promise<Fleet> {
  const s3 = await startS3rver()
  const proxy = await startCountingProxy(s3.endpoint)
  const direct = createS3Store({ id: 'seed', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey })
  const gateways: TestGateway[] = []
  return {
    s3,
    proxy,
    async seed(prefix, count, size) {
      const objects = new Map<string, Buffer>()
      for (let i = 0; i < count; i++) objects.set(`${prefix}/obj-${i}.bin`, randomBytes(size))
      await pool([...objects], 16, ([key, body]) => direct.put(key, Readable.from([body]), { contentType: 'application/octet-stream', size: body.length }))
      return objects
    },
    async gateway(cache, raw = {}) {
      const gateway = await startGateway({
        raw: {
          auth: { ...keys, bearer_token: BEARER },
          trust_proxy: ['127.0.0.1'],
          stores: { media: { type: 's3', bucket: s3.bucket, endpoint: proxy.url, allow_http: true, access_key: s3.accessKey, secret_key: s3.secretKey } },
          // These tests count upstream GETs per object. Hedging (on by default: p99 after 100
          // answers) sends a second GET for any read slower than that on a loaded machine, by
          // design; it has its own tests (test/hedge.test.ts).
          upstream: { hedge_quantile: 0 },
          cache,
          ...raw,
        },
      })
      gateways.push(gateway)
      return gateway
    },
    async close() {
      await Promise.all(gateways.map((g) => g.close()))
      await proxy.close()
      await s3.close()
    },
  }
}

/** A GET through `base`: by a freshly signed link (every call signs anew) or the bearer token. */
async function read(base: string, key: string, how: 'link' | 'bearer', n: number) {
  const url =
    how === 'link'
      ? presign({ baseUrl: base, bucket: 'media', path: key, privateKey: keys.private_key, expiresIn: 600 + n })
      : `${base}/media/${key}`
  const res = await fetch(url, { headers: how === 'bearer' ? { Authorization: `Bearer ${BEARER}` } : {} })
  return { status: res.status, hit: res.headers.get('x-cg-status') ?? '', body: Buffer.from(await res.arrayBuffer()), url }
}

/** A request sent from a chosen loopback source address (Linux routes all of 127/8 to lo). */
function fromAddress(base: string, localAddress: string, target: string, headers: Record<string, string>): Promise<number> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: target, headers, localAddress, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('a fleet of 3 gateways behind the shipped nginx conf', { skip: NGINX ? false : 'nginx not installed' }, () => {
  let fleet: Fleet
  let front: NginxFront
  let hosts: string[]
  let objects: Map<string, Buffer>

  before(async () => {
    fleet = await startFleet()
    const gateways = await Promise.all([0, 1, 2].map(() => fleet.gateway({ max_memory: '64MiB', max_object_size: '8MiB' }, { limits: { failed_auth_burst: 5, failed_auth_per_second: 0.01 } })))
    hosts = gateways.map((g) => hostOf(g.url))
    front = await startNginxFront(hosts)
    objects = await fleet.seed('one', 300, 1024)
  })
  after(async () => {
    await front?.stop()
    await fleet?.close()
  })

  it('300 objects read twice (fresh links and bearer): one upstream GET per object across the fleet, every second read a hit, each on the gateway the ring model predicts', async () => {
    fleet.proxy.reset()
    const keysList = [...objects.keys()]
    const order: ('link' | 'bearer')[][] = keysList.map((_, i) => (i % 2 === 0 ? ['link', 'bearer'] : ['bearer', 'link']))
    for (const pass of [0, 1]) {
      const results = await pool(keysList, 16, (key, i) => read(front.url, key, order[i]![pass]!, pass))
      results.forEach((r, i) => {
        assert.equal(r.status, 200, keysList[i])
        assert.ok(r.body.equals(objects.get(keysList[i]!)!), `body of ${keysList[i]}`)
        assert.match(r.hit, pass === 0 ? /^hit=0/ : /^hit=1/, `read ${pass + 1} of ${keysList[i]} (${order[i]![pass]})`)
      })
    }
    assert.equal(fleet.proxy.counts.byMethod.GET, 300, 'one upstream GET per object, whichever way it was asked for')

    const ring = buildRing(hosts)
    const log = (await front.accessLog()).filter((l) => l.uri.startsWith('/media/one/'))
    assert.equal(log.length, 600)
    const perGateway = new Map<string, number>()
    for (const line of log) {
      assert.deepEqual(line.upstreams, [ownerOf(ring, line.uri)], `${line.uri}: nginx's choice and the ring model agree`)
      perGateway.set(line.upstreams[0]!, (perGateway.get(line.upstreams[0]!) ?? 0) + 1)
    }
    // Every gateway holds a share (about a third each; the ring's balance is bench/ring-sim.ts's).
    assert.equal(perGateway.size, 3)
    for (const [host, n] of perGateway) assert.ok(n >= 2 * 50, `${host} served ${n / 2} objects`)
  })

  it('passes the request line upstream unchanged: the gateway itself refuses a dot-segment and an encoded slash', async () => {
    for (const target of ['/media/one/x/../obj-1.bin', '/media/one%2Fobj-1.bin']) {
      const res = await rawRequest(front.url, 'GET', target, { Authorization: `Bearer ${BEARER}` })
      assert.equal(res.status, 400, target)
      // The gateway's JSON error, not an nginx page: nginx passed the raw target on.
      assert.equal(JSON.parse(res.body.toString()).error, 'invalid path', target)
    }
  })

  it('a PUT through nginx reaches the owner, which drops its copy: the next GET is fresh; one PUT reaches the store', async () => {
    const key = 'one/obj-7.bin'
    assert.match((await read(front.url, key, 'bearer', 0)).hit, /^hit=1/, 'cached by the first test')
    fleet.proxy.reset()
    const fresh = randomBytes(2048)
    const put = await fetch(`${front.url}/media/${key}`, { method: 'PUT', headers: { Authorization: `Bearer ${BEARER}` }, body: fresh })
    assert.equal(put.status, 200)
    const after = await read(front.url, key, 'link', 1)
    assert.equal(after.status, 200)
    assert.ok(after.body.equals(fresh), 'the new body, not the cached old one')
    assert.equal(fleet.proxy.counts.byMethod.PUT, 1)
    const lines = (await front.accessLog()).filter((l) => l.uri === `/media/${key}`)
    const owner = ownerOf(buildRing(hosts), `/media/${key}`)
    assert.deepEqual(lines.at(-2)?.upstreams, [owner], 'the PUT went to the owner')
    assert.deepEqual(lines.at(-1)?.upstreams, [owner])
  })

  it('Range and conditional requests pass through nginx untouched: 206 with the bytes, 304 on a matching ETag', async () => {
    const key = 'one/obj-11.bin'
    const whole = await fetch(`${front.url}/media/${key}`, { headers: { Authorization: `Bearer ${BEARER}` } })
    const etag = whole.headers.get('etag')!
    assert.ok(etag)
    await whole.arrayBuffer()
    const range = await fetch(`${front.url}/media/${key}`, { headers: { Authorization: `Bearer ${BEARER}`, Range: 'bytes=10-19' } })
    assert.equal(range.status, 206)
    assert.equal(range.headers.get('content-range'), 'bytes 10-19/1024')
    assert.ok(Buffer.from(await range.arrayBuffer()).equals(objects.get(key)!.subarray(10, 20)))
    const notModified = await fetch(`${front.url}/media/${key}`, { headers: { Authorization: `Bearer ${BEARER}`, 'If-None-Match': etag } })
    assert.equal(notModified.status, 304)
    const stale = await fetch(`${front.url}/media/${key}`, { headers: { Authorization: `Bearer ${BEARER}`, 'If-Match': '"not-the-etag"' } })
    assert.equal(stale.status, 412)
  })

  it('refuses an upload over client_max_body_size (= cache.max_upload_size, 5 GiB) before reading its body', async () => {
    const res = await rawRequest(front.url, 'PUT', '/media/one/huge.bin', { Authorization: `Bearer ${BEARER}`, 'Content-Length': String(5 * 1024 * MiB + 1) })
    assert.equal(res.status, 413)
  })

  it('X-Forwarded-For: the gateways (trust_proxy = nginx) see each client apart, and a client cannot spoof its address', async () => {
    const target = '/media/one/obj-3.bin?sig=bm90LWEtcGF5bG9hZA.bm90LWEtc2lnbmF0dXJl'
    // 5 failures (the burst) from 127.0.0.2, claiming to be someone else, then the 429.
    for (let i = 0; i < 5; i++) assert.equal(await fromAddress(front.url, '127.0.0.2', target, { 'X-Forwarded-For': `198.51.100.${i}` }), 401)
    assert.equal(await fromAddress(front.url, '127.0.0.2', target, { 'X-Forwarded-For': '198.51.100.77' }), 429)
    // Another client is not limited, even when it claims to be 127.0.0.2.
    assert.equal(await fromAddress(front.url, '127.0.0.3', target, { 'X-Forwarded-For': '127.0.0.2' }), 401)
  })
})

describe('fleet capacity: 3 gateways of M hold what one gateway of 3 M holds', { skip: NGINX ? false : 'nginx not installed' }, () => {
  const M = 2 * MiB
  const SIZE = 16 * 1024
  let fleet: Fleet
  let front: NginxFront
  let single: TestGateway
  let big: TestGateway
  let working: string[]

  before(async () => {
    fleet = await startFleet()
    const cache = { max_memory: M, max_object_size: '1MiB' }
    const members = await Promise.all([0, 1, 2].map(() => fleet.gateway(cache)))
    ;[single, big] = await Promise.all([fleet.gateway(cache), fleet.gateway({ max_memory: 3 * M, max_object_size: '1MiB' })])
    const hosts = members.map((g) => hostOf(g.url))
    front = await startNginxFront(hosts)
    // A working set of 2.5 M in object bytes, an equal share per member: the ring's own
    // imbalance for N = 3 (bench/ring-sim.ts) is taken out of this test.
    const ring = buildRing(hosts)
    const perMember = Math.ceil((2.5 * M) / SIZE / 3)
    const shares = new Map(hosts.map((h) => [h, [] as string[]]))
    for (let i = 0; [...shares.values()].some((s) => s.length < perMember); i++) {
      const key = `cap/obj-${i}.bin`
      const share = shares.get(ownerOf(ring, `/media/${key}`)!)!
      if (share.length < perMember) share.push(key)
    }
    working = [...shares.values()].flat()
    await pool(working, 16, async (key) => {
      const body = randomBytes(SIZE)
      const res = await fetch(`${big.url}/media/${key}`, { method: 'PUT', headers: { Authorization: `Bearer ${BEARER}` }, body })
      assert.equal(res.status, 200)
    })
  })
  after(async () => {
    await front?.stop()
    await fleet?.close()
  })

  /** One warming pass in order, then two passes in a seeded random order: the hit ratio of those. */
  async function hitRatio(base: string): Promise<number> {
    await pool(working, 8, (key) => read(base, key, 'bearer', 0))
    const random = prng(14)
    const passes = [...working, ...working].map((key) => ({ key, r: random() })).sort((a, b) => a.r - b.r)
    const results = await pool(passes, 8, ({ key }) => read(base, key, 'bearer', 0))
    for (const r of results) assert.equal(r.status, 200)
    return results.filter((r) => r.hit.startsWith('hit=1')).length / results.length
  }

  it('the fleet of 3 × M hits about as often as one gateway of 3 M; one gateway of M cannot', async (t) => {
    const fleetRatio = await hitRatio(front.url)
    const bigRatio = await hitRatio(big.url)
    const singleRatio = await hitRatio(single.url)
    const report = `fleet ${fleetRatio.toFixed(3)}, one of 3 M ${bigRatio.toFixed(3)}, one of M ${singleRatio.toFixed(3)} (working set ${working.length} × 16 KiB)`
    t.diagnostic(report)
    assert.ok(bigRatio > 0.95, report)
    assert.ok(fleetRatio >= bigRatio - 0.05, report)
    assert.ok(singleRatio < 0.6, report)
  })
})
