/**
 * Fallback stores against real emulators: an S3 bucket (s3rver, behind the counting proxy or
 * at a refused port) falling back to an Azure container (Azurite).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { createAzureStore } from '../src/stores/azure.ts'
import { createS3Store } from '../src/stores/s3.ts'
import { StoreHealth } from '../src/stores/store-health.ts'
import type { Store } from '../src/stores/types.ts'
import { withFallback } from '../src/stores/with-fallback.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { type AzuriteHandle, type S3rverHandle, startAzurite, startS3rver } from './helpers/emulators.ts'
import { BEARER, type TestGateway, startGateway } from './helpers/gateway.ts'
import { freePort } from './helpers/ports.ts'

const auth = { Authorization: `Bearer ${BEARER}` }
const KiB = 1024
/** The config of the two buckets when the stores themselves are injected. */
const STUBS = { media: { type: 'fs', root: '/nonexistent', fallback: ['media-eu'] }, 'media-eu': { type: 'fs', root: '/nonexistent' } }

async function read(gw: TestGateway, key: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${gw.url}/media/${key}`, { headers: { ...auth, ...headers } })
  return { status: r.status, cg: r.headers.get('x-cg-status'), body: Buffer.from(await r.arrayBuffer()) }
}

describe('fallback stores (s3rver → Azurite)', () => {
  let s3: S3rverHandle
  let az: AzuriteHandle
  let proxy: CountingProxy
  let direct: Store
  let azure: Store
  const s3Store = (endpoint: string) =>
    createS3Store({ id: 'media', bucket: s3.bucket, endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey, maxAttempts: 1 })
  const put = (store: Store, key: string, bytes: Buffer) => store.put(key, Readable.from([bytes]), { contentType: 'application/octet-stream', size: bytes.length })

  before(async () => {
    ;[s3, az] = await Promise.all([startS3rver(), startAzurite()])
    proxy = await startCountingProxy(s3.endpoint)
    direct = s3Store(s3.endpoint)
    azure = createAzureStore({ id: 'media-eu', container: az.container, connectionString: az.connectionString, maxAttempts: 1 })
  })
  after(async () => {
    await proxy?.close()
    await Promise.all([s3?.close(), az?.close()])
  })

  it('primary refusing connections: reads come from the fallback with its bytes and name; /stats and /metrics show both stores', async () => {
    const bytes = randomBytes(40 * KiB)
    await put(azure, 'down/a.bin', bytes)
    const refused = s3Store(`http://127.0.0.1:${await freePort()}`)
    const gw = await startGateway({ stores: new Map([['media', refused], ['media-eu', azure]]), raw: { stores: STUBS } })
    try {
      const first = await read(gw, 'down/a.bin')
      assert.equal(first.status, 200)
      assert.ok(first.body.equals(bytes))
      assert.equal(first.cg, 'hit=0; store=media-eu')
      const head = await fetch(`${gw.url}/media/down/a.bin`, { method: 'HEAD', headers: auth })
      assert.equal(head.status, 200)
      const second = await read(gw, 'down/a.bin')
      assert.equal(second.cg, 'hit=1', 'cached under the bucket id; a hit names no store')
      assert.ok(second.body.equals(bytes))
      assert.equal((await read(gw, 'down/nowhere.bin')).status, 502, 'missing on the fallback, the primary unknown: not a 404')
      const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { stores: Record<string, { breaker: string; error_rate: number; served: number }> }
      assert.ok(stats.stores.media && stats.stores['media-eu'])
      assert.ok(stats.stores.media.error_rate > 0.5)
      assert.ok(stats.stores['media-eu'].served >= 2)
      const metrics = await (await fetch(`${gw.url}/metrics`)).text()
      assert.match(metrics, /cachegate_store_breaker_state\{store="media"\} [0-2]/)
      assert.match(metrics, /cachegate_store_reads_served_total\{store="media-eu"\} [2-9]/)
      const up = await fetch(`${gw.url}/media/down/new.bin`, { method: 'PUT', headers: auth, body: 'x' })
      assert.equal(up.status, 502, 'writes go to the bucket’s own store only')
      assert.equal(await azure.head('down/new.bin'), null)
    } finally {
      await gw.close()
    }
  })

  it('a key missing on the primary but present on the fallback is served; missing everywhere is 404; on both, the primary serves', async () => {
    const bytes = randomBytes(10 * KiB)
    await put(azure, 'lag/only-eu.bin', bytes)
    await put(direct, 'lag/both.bin', bytes)
    await put(azure, 'lag/both.bin', randomBytes(10 * KiB))
    const gw = await startGateway({ stores: new Map([['media', s3Store(proxy.url)], ['media-eu', azure]]), raw: { stores: STUBS } })
    try {
      const lagging = await read(gw, 'lag/only-eu.bin')
      assert.equal(lagging.status, 200)
      assert.equal(lagging.cg, 'hit=0; store=media-eu')
      assert.ok(lagging.body.equals(bytes))
      assert.equal((await read(gw, 'lag/nowhere.bin')).status, 404)
      const both = await read(gw, 'lag/both.bin')
      assert.equal(both.cg, 'hit=0')
      assert.ok(both.body.equals(bytes))
    } finally {
      await gw.close()
    }
  })

  it('after 5 failures the primary gets no requests until the probe; recovered, it serves again', async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `breaker/${i}.bin`)
    const bytes = randomBytes(8 * KiB)
    for (const key of keys) await Promise.all([put(direct, key, bytes), put(azure, key, bytes)])
    // The production defaults (30 s) as options of the wrapper, shortened for the test.
    // A clock moved by hand: under load, real milliseconds passed between the misses below could
    // outlast the cooldown and let a probe reach the failing primary (a 502 instead of a 404).
    let t = 0
    const now = () => t
    const health = { media: new StoreHealth('media', { cooldownMs: 400, halfLifeMs: 50, now }), eu: new StoreHealth('media-eu', { cooldownMs: 400, halfLifeMs: 50, now }) }
    const media = withFallback({ store: s3Store(proxy.url), health: health.media }, [{ store: azure, health: health.eu }])
    const gw = await startGateway({ stores: new Map([['media', media], ['media-eu', azure]]), raw: { stores: { ...STUBS, media: { type: 'fs', root: '/nonexistent' } } } })
    try {
      proxy.configure({ failStatus: 503, delayMs: 100 })
      proxy.reset()
      // Concurrent misses of distinct keys (no coalescing) all rank the primary first.
      const burst = await Promise.all(keys.map((key) => read(gw, key)))
      for (const r of burst) {
        assert.equal(r.status, 200)
        assert.equal(r.cg, 'hit=0; store=media-eu')
        assert.ok(r.body.equals(bytes))
      }
      assert.ok(proxy.counts.requests >= 5, `primary asked ${proxy.counts.requests} times`)
      assert.equal(health.media.breaker.state, 'open')
      proxy.reset()
      for (let i = 0; i < 10; i++) assert.equal((await read(gw, `breaker/miss-${i}.bin`)).status, 404)
      assert.equal(proxy.counts.requests, 0, 'no request to an open primary')
      proxy.configure({})
      t += 450
      await put(direct, 'breaker/later.bin', bytes)
      proxy.reset()
      const probe = await read(gw, 'breaker/later.bin')
      assert.equal(probe.status, 200)
      assert.equal(probe.cg, 'hit=0', 'the probe went to the primary and it answered')
      assert.ok(proxy.counts.requests >= 1)
      assert.equal(health.media.breaker.state, 'closed')
      t += 600 // its failures fade (half-life 50 ms): first in the ranking again
      await put(direct, 'breaker/again.bin', bytes)
      await put(azure, 'breaker/again.bin', bytes)
      assert.equal((await read(gw, 'breaker/again.bin')).cg, 'hit=0')
    } finally {
      proxy.configure({})
      await gw.close()
    }
  })

  it('pages and ranged reads of a large object come from the fallback too', async () => {
    const bytes = randomBytes(300 * KiB)
    await put(azure, 'big/paged.bin', bytes)
    const refused = s3Store(`http://127.0.0.1:${await freePort()}`)
    const gw = await startGateway({
      stores: new Map([['media', refused], ['media-eu', azure]]),
      raw: { stores: STUBS, cache: { max_memory: '16MiB', max_object_size: '100KiB', page_size: '64KiB' } },
    })
    try {
      const ranged = await read(gw, 'big/paged.bin', { Range: 'bytes=100000-200000' })
      assert.equal(ranged.status, 206)
      assert.ok(ranged.body.equals(bytes.subarray(100_000, 200_001)))
      assert.match(ranged.cg ?? '', /^hit=0/)
      const whole = await read(gw, 'big/paged.bin')
      assert.equal(whole.status, 200)
      assert.ok(whole.body.equals(bytes))
    } finally {
      await gw.close()
    }
  })
})
