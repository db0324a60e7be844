/**
 * Freshness for buckets written behind the gateway (issue 13), against real emulators: objects
 * are replaced straight in s3rver / Azurite, and every upstream request is counted by the
 * counting proxy. The clock is injected: ages pass by moving it, never by sleeping.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { createAzureStore } from '../src/stores/azure.ts'
import { createS3Store } from '../src/stores/s3.ts'
import type { Store } from '../src/stores/types.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { type AzuriteHandle, type S3rverHandle, startAzurite, startS3rver } from './helpers/emulators.ts'
import { BEARER, type TestGateway, startGateway, tempDir } from './helpers/gateway.ts'

const auth = { Authorization: `Bearer ${BEARER}` }
const KiB = 1024
const STUB = { type: 'fs', root: '/nonexistent' }

/** A clock the test moves: `advance(31_000)` makes every cached entry 31 s older. */
function testClock() {
  let offset = 0
  return { now: () => Date.now() + offset, advance: (ms: number) => void (offset += ms) }
}

async function get(gw: TestGateway, key: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${gw.url}/media/${key}`, { headers: { ...auth, ...headers } })
  return { status: r.status, cg: r.headers.get('x-cg-status'), body: Buffer.from(await r.arrayBuffer()) }
}

/** The value of a metric sample (`name{labels}` as written by prom-client), 0 when absent. */
async function metric(gw: TestGateway, sample: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `))
  return line ? Number(line.slice(sample.length + 1)) : 0
}

/** Deletes straight in s3rver (the Store interface has no delete). */
async function deleteObject(s3: S3rverHandle, key: string): Promise<void> {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey } })
  try {
    await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }))
  } finally {
    client.destroy()
  }
}

const put = (store: Store, key: string, bytes: Buffer) => store.put(key, Readable.from([bytes]), { contentType: 'application/octet-stream', size: bytes.length })

describe('revalidation against s3rver', () => {
  let s3: S3rverHandle
  let proxy: CountingProxy
  /** Straight to the bucket, behind the gateway's back (not counted). */
  let behind: Store
  const viaProxy = (id = 'media') => createS3Store({ id, bucket: s3.bucket, endpoint: proxy.url, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey, maxAttempts: 1 })

  before(async () => {
    s3 = await startS3rver()
    proxy = await startCountingProxy(s3.endpoint)
    behind = createS3Store({ id: 'media', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey })
  })
  after(async () => {
    await proxy?.close()
    await s3?.close()
  })

  it('immutable by default: a replaced object is served from cache however old it is', async () => {
    const clock = testClock()
    const gw = await startGateway({ stores: new Map([['media', viaProxy()]]), raw: { stores: { media: STUB } }, now: clock.now })
    try {
      const v1 = randomBytes(4 * KiB)
      await put(behind, 'imm/a.bin', v1)
      assert.ok((await get(gw, 'imm/a.bin')).body.equals(v1))
      await put(behind, 'imm/a.bin', randomBytes(4 * KiB))
      proxy.reset()
      clock.advance(365 * 86_400_000)
      const later = await get(gw, 'imm/a.bin')
      assert.equal(later.cg, 'hit=1')
      assert.ok(later.body.equals(v1))
      await gw.settled()
      assert.equal(proxy.counts.requests, 0)
    } finally {
      await gw.close()
    }
  })

  it('whole objects: a stale hit is served at once and revalidated once per key per period (200 replaces, 304 keeps)', async () => {
    const clock = testClock()
    const gw = await startGateway({ stores: new Map([['media', viaProxy()]]), raw: { stores: { media: STUB }, cache: { revalidate_after: '30s' } }, now: clock.now })
    try {
      const v1 = randomBytes(4 * KiB)
      const v2 = randomBytes(4 * KiB)
      await put(behind, 'r/a.bin', v1)
      await put(behind, 'r/b.bin', v1)
      assert.ok((await get(gw, 'r/a.bin')).body.equals(v1))
      assert.ok((await get(gw, 'r/b.bin')).body.equals(v1))
      await put(behind, 'r/a.bin', v2)
      proxy.reset()

      clock.advance(29_000)
      const young = await get(gw, 'r/a.bin')
      assert.equal(young.cg, 'hit=1', 'younger than revalidate_after: a plain hit')
      assert.ok(young.body.equals(v1))
      assert.equal(proxy.counts.requests, 0)

      clock.advance(2_000)
      // Ten concurrent stale hits of one key, and one of another: one conditional GET per key.
      const stale = await Promise.all([...Array.from({ length: 10 }, () => get(gw, 'r/a.bin')), get(gw, 'r/b.bin')])
      for (const r of stale) {
        assert.equal(r.cg, 'hit=1; stale')
        assert.ok(r.body.equals(v1), 'served at once, before the revalidation ends')
      }
      await gw.settled()
      assert.deepEqual(proxy.counts.byMethod, { GET: 2 })

      // a.bin changed (200: replaced), b.bin did not (304: kept, its age restarts).
      const fresh = await get(gw, 'r/a.bin')
      assert.equal(fresh.cg, 'hit=1')
      assert.ok(fresh.body.equals(v2))
      assert.equal((await get(gw, 'r/b.bin')).cg, 'hit=1')
      assert.equal(proxy.counts.requests, 2, 'within the next period: no upstream request')
      assert.equal(await metric(gw, 'cachegate_cache_revalidations_total{result="changed"}'), 1)
      assert.equal(await metric(gw, 'cachegate_cache_revalidations_total{result="not_modified"}'), 1)

      // Next period: one more conditional GET per key.
      clock.advance(31_000)
      await Promise.all([get(gw, 'r/a.bin'), get(gw, 'r/a.bin'), get(gw, 'r/b.bin')])
      await gw.settled()
      assert.deepEqual(proxy.counts.byMethod, { GET: 4 })
      assert.equal(await metric(gw, 'cachegate_cache_revalidations_total{result="not_modified"}'), 3)

      // Deleted in the bucket: the revalidation's 404 drops the copy.
      await deleteObject(s3, 'r/b.bin')
      clock.advance(31_000)
      await get(gw, 'r/b.bin')
      await gw.settled()
      assert.equal((await get(gw, 'r/b.bin')).status, 404)
    } finally {
      await gw.close()
    }
  })

  it('past max_stale a hit waits for its revalidation; a failing store leaves the cached copy served (stale-if-error)', async () => {
    const clock = testClock()
    const gw = await startGateway({ stores: new Map([['media', viaProxy()]]), raw: { stores: { media: STUB }, cache: { revalidate_after: '30s', max_stale: '1m' } }, now: clock.now })
    try {
      const v1 = randomBytes(4 * KiB)
      const v2 = randomBytes(5 * KiB)
      await put(behind, 'ms/a.bin', v1)
      await get(gw, 'ms/a.bin')
      await put(behind, 'ms/a.bin', v2)
      clock.advance(91_000)
      const waited = await get(gw, 'ms/a.bin')
      assert.equal(waited.cg, 'hit=0; replaced')
      assert.ok(waited.body.equals(v2), 'past revalidate_after + max_stale: the new version, not the old')

      clock.advance(91_000)
      const confirmed = await get(gw, 'ms/a.bin')
      assert.equal(confirmed.cg, 'hit=1; revalidated')
      assert.ok(confirmed.body.equals(v2))

      proxy.configure({ failStatus: 503 })
      proxy.reset()
      try {
        clock.advance(91_000)
        const down = await get(gw, 'ms/a.bin')
        assert.equal(down.status, 200)
        assert.equal(down.cg, 'hit=1; stale-if-error')
        assert.ok(down.body.equals(v2))
        const head = await fetch(`${gw.url}/media/ms/a.bin`, { method: 'HEAD', headers: auth })
        assert.equal(head.status, 200)
        assert.equal(head.headers.get('x-cg-status'), 'hit=1; stale-if-error')
        assert.equal(proxy.counts.requests, 1, 'a failed revalidation is not retried for a second: the HEAD did not ask')
        clock.advance(1_000)
        assert.equal((await get(gw, 'ms/a.bin')).cg, 'hit=1; stale-if-error')
        assert.equal(proxy.counts.requests, 2)
      } finally {
        proxy.configure({})
      }
      assert.equal(await metric(gw, 'cachegate_cache_stale_if_error_total'), 3)
      assert.equal(await metric(gw, 'cachegate_cache_revalidations_total{result="error"}'), 2)
      // The store is back: the next revalidation confirms the copy.
      clock.advance(1_000)
      assert.equal((await get(gw, 'ms/a.bin')).cg, 'hit=1; revalidated')
    } finally {
      await gw.close()
    }
  })

  it('the disk tier keeps stored-at times across a restart: an old entry is revalidated after it, a young one is not', async () => {
    const diskPath = await tempDir('cachegate-fresh-disk-')
    const raw = { stores: { media: STUB }, cache: { max_memory: '8MiB', max_object_size: '1MiB', max_disk: '32MiB', disk_path: diskPath, revalidate_after: '30s' } }
    const v1 = randomBytes(40 * KiB)
    const v2 = randomBytes(40 * KiB)
    await put(behind, 'disk/a.bin', v1)
    await put(behind, 'disk/young.bin', v1)
    const first = await startGateway({ stores: new Map([['media', viaProxy()]]), raw })
    try {
      await get(first, 'disk/a.bin')
      await get(first, 'disk/young.bin')
    } finally {
      await first.close()
    }
    await put(behind, 'disk/a.bin', v2)
    await put(behind, 'disk/young.bin', v2)
    proxy.reset()

    // The restarted gateway's clock is 31 s on: entries written before the restart are stale.
    const clock = testClock()
    clock.advance(31_000)
    const second = await startGateway({ stores: new Map([['media', viaProxy()]]), raw, now: clock.now })
    try {
      const stale = await get(second, 'disk/a.bin')
      assert.equal(stale.cg, 'hit=1; stale')
      assert.ok(stale.body.equals(v1))
      await second.settled()
      assert.deepEqual(proxy.counts.byMethod, { GET: 1 })
      const fresh = await get(second, 'disk/a.bin')
      assert.ok(fresh.body.equals(v2))
      assert.equal(fresh.cg, 'hit=1')
      assert.equal(proxy.counts.requests, 1)
    } finally {
      await second.close()
    }

    // Written 0 s before a restart whose clock has not moved: still young, no request.
    const clock3 = testClock()
    const third = await startGateway({ stores: new Map([['media', viaProxy()]]), raw, now: clock3.now })
    try {
      proxy.reset()
      const again = await get(third, 'disk/a.bin')
      assert.ok(again.body.equals(v2), 'the replaced copy was written to disk')
      assert.equal(again.cg, 'hit=1')
      await third.settled()
      assert.equal(proxy.counts.requests, 0)
    } finally {
      await third.close()
    }
  })

  it('pages of a large object revalidate through its metadata record: one HEAD per period, a changed ETag drops every page', async () => {
    const clock = testClock()
    const raw = { stores: { media: STUB }, cache: { max_memory: '4MiB', max_object_size: '64KiB', page_size: '16KiB', revalidate_after: '30s', max_stale: '0s' } }
    const gw = await startGateway({ stores: new Map([['media', viaProxy()]]), raw, now: clock.now })
    try {
      const v1 = randomBytes(100 * KiB)
      const v2 = randomBytes(100 * KiB)
      await put(behind, 'big/a.bin', v1)
      const range = { Range: 'bytes=10000-50000' }
      assert.ok((await get(gw, 'big/a.bin', range)).body.equals(v1.subarray(10000, 50001)))
      assert.equal((await get(gw, 'big/a.bin', range)).cg, 'hit=1')

      // Unchanged: one HEAD per period, the pages stay.
      proxy.reset()
      clock.advance(31_000)
      const kept = await get(gw, 'big/a.bin', range)
      assert.ok(kept.body.equals(v1.subarray(10000, 50001)))
      assert.equal(kept.cg, 'hit=1')
      assert.deepEqual(proxy.counts.byMethod, { HEAD: 1 })
      await get(gw, 'big/a.bin', range)
      assert.deepEqual(proxy.counts.byMethod, { HEAD: 1 }, 'the record was rewritten: its age restarted')

      // Replaced behind the gateway: the old pages are never served after the next period.
      await put(behind, 'big/a.bin', v2)
      proxy.reset()
      clock.advance(31_000)
      const changed = await get(gw, 'big/a.bin', range)
      assert.equal(changed.status, 206)
      assert.ok(changed.body.equals(v2.subarray(10000, 50001)))
      // One HEAD (the revalidation, which records the new version); pages 0-3 again (the old ones were dropped).
      assert.deepEqual(proxy.counts.byMethod, { HEAD: 1, GET: 4 })
      assert.ok((await get(gw, 'big/a.bin')).body.equals(v2), 'the whole object, from pages of one version')
    } finally {
      await gw.close()
    }
  })

  it('a per-store override: stores.<id>.cache.revalidate_after applies to that store only', async () => {
    const clock = testClock()
    const raw = { stores: { media: { ...STUB, cache: { revalidate_after: '10s' } }, other: STUB } }
    const gw = await startGateway({ stores: new Map([['media', viaProxy()], ['other', viaProxy('other')]]), raw, now: clock.now })
    try {
      await put(behind, 'po/a.bin', randomBytes(KiB))
      await get(gw, 'po/a.bin')
      await fetch(`${gw.url}/other/po/a.bin`, { headers: auth }).then((r) => r.arrayBuffer())
      clock.advance(11_000)
      proxy.reset()
      assert.equal((await get(gw, 'po/a.bin')).cg, 'hit=1; stale')
      const other = await fetch(`${gw.url}/other/po/a.bin`, { headers: auth })
      await other.arrayBuffer()
      assert.equal(other.headers.get('x-cg-status'), 'hit=1')
      await gw.settled()
      assert.equal(proxy.counts.requests, 1)
    } finally {
      await gw.close()
    }
  })

  it('negative_ttl: N lookups of a missing key make 1 upstream request; a PUT makes it visible at once', async () => {
    const clock = testClock()
    const gw = await startGateway({ stores: new Map([['media', viaProxy()]]), raw: { stores: { media: STUB }, cache: { negative_ttl: '1m' } }, now: clock.now })
    try {
      proxy.reset()
      for (let i = 0; i < 5; i++) assert.equal((await get(gw, 'neg/missing.bin')).status, 404)
      const head = await fetch(`${gw.url}/media/neg/missing.bin`, { method: 'HEAD', headers: auth })
      assert.equal(head.status, 404)
      assert.equal(proxy.counts.requests, 1)
      assert.equal(await metric(gw, 'cachegate_cache_negative_hits_total'), 5)

      const bytes = randomBytes(KiB)
      const written = await fetch(`${gw.url}/media/neg/missing.bin`, { method: 'PUT', headers: auth, body: bytes })
      assert.equal(written.status, 200)
      const after = await get(gw, 'neg/missing.bin')
      assert.equal(after.status, 200)
      assert.ok(after.body.equals(bytes))

      // Written behind the gateway: visible once the negative entry expires.
      proxy.reset()
      assert.equal((await get(gw, 'neg/later.bin')).status, 404)
      await put(behind, 'neg/later.bin', bytes)
      assert.equal((await get(gw, 'neg/later.bin')).status, 404)
      clock.advance(61_000)
      assert.equal((await get(gw, 'neg/later.bin')).status, 200)
      assert.equal(proxy.counts.requests, 2)
    } finally {
      await gw.close()
    }
  })

  it('without negative_ttl every lookup of a missing key goes upstream', async () => {
    const gw = await startGateway({ stores: new Map([['media', viaProxy()]]), raw: { stores: { media: STUB } } })
    try {
      proxy.reset()
      for (let i = 0; i < 3; i++) assert.equal((await get(gw, 'neg/none.bin')).status, 404)
      assert.equal(proxy.counts.requests, 3)
    } finally {
      await gw.close()
    }
  })

  it('verify_sample_rate: a sampled hit that differs from the store is logged, counted and dropped', async () => {
    const gw = await startGateway({ stores: new Map([['media', viaProxy()]]), raw: { stores: { media: STUB }, cache: { verify_sample_rate: 1 } } })
    try {
      const v1 = randomBytes(4 * KiB)
      const v2 = randomBytes(4 * KiB)
      await put(behind, 'v/a.bin', v1)
      await put(behind, 'v/same.bin', v1)
      await get(gw, 'v/a.bin')
      await get(gw, 'v/same.bin')
      await put(behind, 'v/a.bin', v2)
      const hit = await get(gw, 'v/a.bin')
      assert.equal(hit.cg, 'hit=1')
      assert.ok(hit.body.equals(v1))
      assert.equal((await get(gw, 'v/same.bin')).cg, 'hit=1')
      await gw.settled()
      assert.equal(await metric(gw, 'cachegate_cache_verify_mismatches_total'), 1)
      assert.equal(await metric(gw, 'cachegate_cache_verify_checks_total{result="match"}'), 1)
      const after = await get(gw, 'v/a.bin')
      assert.equal(after.cg, 'hit=0', 'dropped: fetched again')
      assert.ok(after.body.equals(v2))
    } finally {
      await gw.close()
    }
  })

  it('verify_only: never serves cached bytes, still fills the cache and compares it with the store', async () => {
    const gw = await startGateway({ stores: new Map([['media', viaProxy()]]), raw: { stores: { media: STUB }, cache: { verify_only: true } } })
    try {
      const v1 = randomBytes(4 * KiB)
      const v2 = randomBytes(4 * KiB)
      await put(behind, 'vo/a.bin', v1)
      proxy.reset()
      assert.ok((await get(gw, 'vo/a.bin')).body.equals(v1))
      const again = await get(gw, 'vo/a.bin')
      assert.equal(again.cg, 'hit=0')
      assert.ok(again.body.equals(v1))
      assert.equal(proxy.counts.byMethod.GET, 2, 'every read goes to the store')
      await put(behind, 'vo/a.bin', v2)
      const changed = await get(gw, 'vo/a.bin')
      assert.ok(changed.body.equals(v2))
      assert.equal(changed.cg, 'hit=0')
      await gw.settled()
      assert.equal(await metric(gw, 'cachegate_cache_verify_checks_total{result="match"}'), 1)
      assert.equal(await metric(gw, 'cachegate_cache_verify_mismatches_total'), 1)
      const head = await fetch(`${gw.url}/media/vo/a.bin`, { method: 'HEAD', headers: auth })
      assert.equal(head.headers.get('x-cg-status'), 'hit=0')
    } finally {
      await gw.close()
    }
  })
})

describe('revalidation against Azurite', () => {
  let az: AzuriteHandle
  let proxy: CountingProxy
  before(async () => {
    az = await startAzurite()
    const port = new URL(/BlobEndpoint=([^;]+)/.exec(az.connectionString)![1]!).port
    proxy = await startCountingProxy(`http://127.0.0.1:${port}`)
  })
  after(async () => {
    await proxy?.close()
    await az?.close()
  })

  it('a blob replaced in the container is served fresh after revalidate_after, one conditional GET per period', async () => {
    const behind = createAzureStore({ id: 'media', container: az.container, connectionString: az.connectionString })
    const viaProxy = createAzureStore({ id: 'media', container: az.container, connectionString: az.connectionString.replace(/127\.0\.0\.1:\d+/, new URL(proxy.url).host), maxAttempts: 1 })
    const clock = testClock()
    const gw = await startGateway({ stores: new Map([['media', viaProxy]]), raw: { stores: { media: STUB }, cache: { revalidate_after: '5m' } }, now: clock.now })
    try {
      const v1 = randomBytes(4 * KiB)
      const v2 = randomBytes(6 * KiB)
      await put(behind, 'az/a.bin', v1)
      await get(gw, 'az/a.bin')
      await put(behind, 'az/a.bin', v2)
      proxy.reset()
      clock.advance(4 * 60_000)
      assert.ok((await get(gw, 'az/a.bin')).body.equals(v1))
      assert.equal(proxy.counts.requests, 0)
      clock.advance(2 * 60_000)
      await Promise.all([get(gw, 'az/a.bin'), get(gw, 'az/a.bin')])
      await gw.settled()
      assert.deepEqual(proxy.counts.byMethod, { GET: 1 })
      const fresh = await get(gw, 'az/a.bin')
      assert.ok(fresh.body.equals(v2))
      clock.advance(6 * 60_000)
      await get(gw, 'az/a.bin')
      await gw.settled()
      assert.deepEqual(proxy.counts.byMethod, { GET: 2 })
      assert.equal(await metric(gw, 'cachegate_cache_revalidations_total{result="not_modified"}'), 1)
    } finally {
      await gw.close()
    }
  })
})
