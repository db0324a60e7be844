/**
 * Hedged reads end to end: a gateway over s3rver behind the counting proxy, which stalls
 * chosen upstream GETs (`delayFor`). Every read is a cold miss (a key of its own), so every
 * client GET costs one upstream GET unless it is hedged.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createS3Store } from '../src/stores/s3.ts'
import type { Store } from '../src/stores/types.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { type S3rverHandle, startS3rver } from './helpers/emulators.ts'
import { BEARER, type TestGateway, startGateway } from './helpers/gateway.ts'

const auth = { Authorization: `Bearer ${BEARER}` }
const STALL_MS = 3000
const WARM_UP = 8

describe('hedged reads', () => {
  let s3: S3rverHandle
  let proxy: CountingProxy
  /** Straight to s3rver: uploads that the proxy does not count. */
  let direct: Store
  const gateways: TestGateway[] = []
  let serial = 0

  before(async () => {
    s3 = await startS3rver()
    proxy = await startCountingProxy(s3.endpoint)
    direct = createS3Store({ id: 'direct', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey })
  })

  after(async () => {
    for (const gw of gateways) await gw.close()
    await direct.close?.()
    await proxy.close()
    await s3.close()
  })

  async function gateway(upstream: Record<string, unknown>, cache: Record<string, unknown> = {}): Promise<TestGateway> {
    const store = { type: 's3', bucket: s3.bucket, endpoint: proxy.url, allow_http: true, access_key: s3.accessKey, secret_key: s3.secretKey }
    const gw = await startGateway({ raw: { stores: { objs: store }, upstream: { hedge_min_samples: 5, ...upstream }, cache } })
    gateways.push(gw)
    return gw
  }

  /** A new object of `size` random bytes under a key no gateway has read. */
  async function upload(size = 1024): Promise<{ key: string; bytes: Buffer }> {
    const key = `hedge/${serial++}.bin`
    const bytes = randomBytes(size)
    await direct.put(key, Readable.from([bytes]), { contentType: 'application/octet-stream' })
    return { key, bytes }
  }

  async function read(gw: TestGateway, key: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; ms: number }> {
    const started = performance.now()
    const res = await fetch(`${gw.url}/objs/${key}`, { headers: { ...auth, ...headers } })
    const body = Buffer.from(await res.arrayBuffer())
    return { status: res.status, body, ms: performance.now() - started }
  }

  /** Fast cold reads, so the gateway learns this store's time to headers. */
  async function warmUp(gw: TestGateway, count = WARM_UP): Promise<void> {
    for (let i = 0; i < count; i++) {
      const { key, bytes } = await upload()
      assert.deepEqual((await read(gw, key)).body, bytes)
    }
  }

  /** From now on, the `nth` upstream GET (0: the next one) stalls; counts start afresh. */
  function stallGet(nth: number | ((index: number) => boolean), ms = STALL_MS): void {
    proxy.reset()
    const stalls = typeof nth === 'number' ? (index: number) => index === nth : nth
    proxy.configure({ delayFor: ({ method, index }) => (method === 'GET' && stalls(index) ? ms : 0) })
  }

  async function stats(gw: TestGateway): Promise<{ sent: number; won: number; threshold_ms: number | null } | undefined> {
    const res = await fetch(`${gw.url}/stats`, { headers: auth })
    const doc = (await res.json()) as { upstream: { hedges: Record<string, { sent: number; won: number; threshold_ms: number | null }> } }
    return doc.upstream.hedges.objs
  }

  async function eventually(check: () => boolean, ms = 2000): Promise<void> {
    const deadline = Date.now() + ms
    while (!check() && Date.now() < deadline) await sleep(20)
  }

  it('a GET that stalls is hedged once the threshold is learned: the answer comes at about the threshold, and the stalled GET is aborted', async () => {
    const gw = await gateway({ hedge_max_ratio: 1 })
    await warmUp(gw)
    const before = await stats(gw)
    const threshold = before?.threshold_ms
    assert.ok(before && typeof threshold === 'number' && threshold < 500, `threshold ${threshold} ms`)
    // A warm-up GET slower than the threshold just learned (a loaded machine) may itself have been
    // hedged: this read must add exactly one hedge, and win it.
    const { key, bytes } = await upload()
    stallGet(0)
    try {
      const got = await read(gw, key)
      assert.equal(got.status, 200)
      assert.deepEqual(got.body, bytes)
      assert.ok(got.ms < threshold + 500, `answered after ${got.ms.toFixed(0)} ms (threshold ${threshold} ms, stall ${STALL_MS} ms)`)
      assert.equal(proxy.counts.byMethod.GET, 2, 'one hedge')
      await eventually(() => proxy.counts.closedEarly === 1)
      assert.equal(proxy.counts.closedEarly, 1, 'the stalled GET was closed by the gateway')
      assert.deepEqual(await stats(gw), { sent: before.sent + 1, won: before.won + 1, threshold_ms: threshold })
      const metrics = await (await fetch(`${gw.url}/metrics`, { headers: auth })).text()
      assert.match(metrics, new RegExp(`cachegate_upstream_hedges_total\\{store="objs"\\} ${before.sent + 1}\n`))
      assert.match(metrics, new RegExp(`cachegate_upstream_hedges_won_total\\{store="objs"\\} ${before.won + 1}\n`))
      assert.match(metrics, /cachegate_upstream_hedge_threshold_seconds\{store="objs"\} \d/)
    } finally {
      proxy.configure({})
    }
  })

  it('no hedge before hedge_min_samples answers', async () => {
    const gw = await gateway({ hedge_max_ratio: 1, hedge_min_samples: 50 })
    await warmUp(gw)
    const { key } = await upload()
    stallGet(0, 400)
    try {
      const got = await read(gw, key)
      assert.ok(got.ms >= 390, `${got.ms} ms`)
      assert.equal(proxy.counts.byMethod.GET, 1)
    } finally {
      proxy.configure({})
    }
  })

  it('hedging off (hedge_quantile 0): a stalled GET is waited for, never sent twice', async () => {
    const gw = await gateway({ hedge_quantile: 0, hedge_max_ratio: 1 })
    await warmUp(gw)
    const { key, bytes } = await upload()
    stallGet(0, 600)
    try {
      const got = await read(gw, key)
      assert.deepEqual(got.body, bytes)
      assert.ok(got.ms >= 590, `${got.ms} ms`)
      assert.equal(proxy.counts.byMethod.GET, 1)
      assert.equal(await stats(gw), undefined)
    } finally {
      proxy.configure({})
    }
  })

  it('the budget caps hedges when every GET is slow (hedge_max_ratio 0.2)', async () => {
    const gw = await gateway({ hedge_max_ratio: 0.2 })
    await warmUp(gw, 10)
    const objects = await Promise.all(Array.from({ length: 10 }, () => upload()))
    stallGet(() => true, 300)
    try {
      const got = await Promise.all(objects.map(({ key }) => read(gw, key)))
      got.forEach((g, i) => assert.deepEqual(g.body, objects[i]!.bytes))
      // 20 GETs in the minute: at most 0.2 × 20 = 4 hedges; without the budget, 10.
      const hedges = (await stats(gw))?.sent ?? 0
      assert.ok(hedges >= 1 && hedges <= 4, `${hedges} hedges`)
      // A hedge that lost before its request was sent may never reach the proxy.
      const gets = proxy.counts.byMethod.GET ?? 0
      assert.ok(gets > 10 && gets <= 10 + hedges, `${gets} upstream GETs for 10 reads and ${hedges} hedges`)
    } finally {
      proxy.configure({})
    }
  })

  it('page reads of a large object are hedged too', async () => {
    const gw = await gateway({ hedge_max_ratio: 1 }, { max_object_size: '64KiB', page_size: '64KiB' })
    await warmUp(gw)
    const { key, bytes } = await upload(512 * 1024)
    // The first GET streams it through (its size was unknown) and learns its size.
    assert.deepEqual((await read(gw, key)).body, bytes)
    // On a loaded machine a warm-up GET, or this first one, may be slower than the threshold and
    // hedged itself: the page read must add exactly one hedge, and win it.
    const before = await stats(gw)
    assert.ok(before)
    stallGet(0)
    try {
      const got = await read(gw, key, { Range: 'bytes=200000-200099' })
      assert.equal(got.status, 206)
      assert.deepEqual(got.body, bytes.subarray(200_000, 200_100))
      assert.ok(got.ms < 1500, `answered after ${got.ms.toFixed(0)} ms (stall ${STALL_MS} ms)`)
      assert.equal(proxy.counts.byMethod.GET, 2, 'the page GET and its hedge')
      await eventually(() => proxy.counts.closedEarly === 1)
      assert.equal(proxy.counts.closedEarly, 1)
      const after = await stats(gw)
      assert.equal(after?.sent, before.sent + 1, 'one hedge sent')
      assert.equal(after?.won, before.won + 1, 'and it won')
    } finally {
      proxy.configure({})
    }
  })
})
