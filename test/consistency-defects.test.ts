/**
 * Review defects (freshness and the S3 front end): stale bytes a purge, a failed write or a
 * failed delete used to leave cached. Real s3rver behind the counting proxy, which slows or
 * fails what the gateway asks of it.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { CopyObjectCommand, DeleteObjectCommand, HeadObjectCommand, ListObjectsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { toBuffer } from '../src/cache/bytes.ts'
import { type DiskFs, nodeFs, openDiskCache } from '../src/cache/disk/index.ts'
import { cacheKey, metaRecordKey, pageKey, pagesPrefix } from '../src/cache/keys.ts'
import { createMemoryCache } from '../src/cache/memory.ts'
import type { Cache } from '../src/cache/types.ts'
import { createLogger } from '../src/log.ts'
import { Telemetry } from '../src/metrics.ts'
import { type FreshnessPolicy, type ObjectService, createObjectService } from '../src/objects/index.ts'
import type { OpenObject } from '../src/objects/types.ts'
import { createAzureStore } from '../src/stores/azure.ts'
import { createS3Store } from '../src/stores/s3.ts'
import type { ByteRange, Store } from '../src/stores/types.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { type AzuriteHandle, type S3rverHandle, startAzurite, startS3rver } from './helpers/emulators.ts'
import { BEARER, type TestGateway, startGateway } from './helpers/gateway.ts'
import { s3Client, startS3Gateway } from './helpers/s3-gateway.ts'

const auth = { Authorization: `Bearer ${BEARER}` }
const ADMIN_TOKEN = 'admin-token-for-tests-0123456789'
const ADMIN_SHA = createHash('sha256').update(ADMIN_TOKEN).digest('hex')
const KiB = 1024
const STUB = { type: 'fs', root: '/nonexistent' }

async function get(gw: TestGateway, key: string) {
  const r = await fetch(`${gw.url}/media/${key}`, { headers: auth })
  return { status: r.status, cg: r.headers.get('x-cg-status'), body: Buffer.from(await r.arrayBuffer()) }
}

const put = (store: Store, key: string, bytes: Buffer) => store.put(key, Readable.from([bytes]), { contentType: 'application/octet-stream', size: bytes.length })

/** Polls (briefly) until `condition` holds: waits for an event, not for an age. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await sleep(5)
  assert.ok(condition(), `timed out waiting for ${what}`)
}


/** A clock the test moves: ages pass by moving it, never by sleeping. */
function testClock() {
  let offset = 0
  return { now: () => Date.now() + offset, advance: (ms: number) => void (offset += ms) }
}

/** A gate the test opens: `wait()` resolves once `open()` is called. */
function gate() {
  let open!: () => void
  const opened = new Promise<void>((resolve) => (open = resolve))
  return { wait: () => opened, open: () => open() }
}

/**
 * A real cache that counts its deletes and can hold one: `holdDelete(key)` makes the next
 * delete of `key` wait (after it is done) until the returned gate opens.
 */
function watchedCache(inner: Cache) {
  const deleted: string[] = []
  const holds = new Map<string, { reached: boolean; gate: ReturnType<typeof gate> }>()
  const cache: Cache = {
    ...inner,
    async delete(key) {
      deleted.push(key)
      await inner.delete(key)
      const hold = holds.get(key)
      if (hold && !hold.reached) {
        hold.reached = true
        await hold.gate.wait()
      }
    },
  }
  return {
    cache,
    deleted,
    holdDelete(key: string) {
      const hold = { reached: false, gate: gate() }
      holds.set(key, hold)
      return { reached: () => hold.reached, release: hold.gate.open }
    },
  }
}

/** Reads one range (or all) of an opened object, planning it first as the HTTP layer does. */
async function readObject(object: OpenObject, range?: ByteRange): Promise<Buffer> {
  if (range) await object.cached([range])
  const body = await object.read(range)
  if (!(body instanceof Readable)) return toBuffer(body)
  return Buffer.concat(await body.toArray())
}

const services = (cache: Cache, options: Partial<Parameters<typeof createObjectService>[0]> = {}): ObjectService =>
  createObjectService({ cache, maxObjectSize: 8 * KiB, maxUploadSize: 1 << 20, telemetry: new Telemetry(), logger: createLogger('silent'), ...options })

describe('consistency defects against s3rver', () => {
  let s3: S3rverHandle
  let proxy: CountingProxy
  /** Straight to the bucket, behind the gateway's back (not counted). */
  let behind: Store
  const viaProxy = () => createS3Store({ id: 'media', bucket: s3.bucket, endpoint: proxy.url, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey, maxAttempts: 1 })

  before(async () => {
    s3 = await startS3rver()
    proxy = await startCountingProxy(s3.endpoint)
    behind = createS3Store({ id: 'media', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey })
  })
  after(async () => {
    await proxy?.close()
    await s3?.close()
  })

  it('purge by prefix detaches a fill in flight: it does not cache the old bytes after the purge', async () => {
    const gw = await startGateway({ stores: new Map([['media', viaProxy()]]), raw: { auth: { bearer_token: BEARER, admin_token_sha256: ADMIN_SHA }, stores: { media: STUB } } })
    try {
      const v1 = randomBytes(32 * KiB)
      const v2 = randomBytes(32 * KiB)
      await put(behind, 'pp/a.bin', v1)
      proxy.reset()
      // The first GET's body takes about a second: its fill is in flight through what follows.
      proxy.configure({ bytesPerSecond: 32 * KiB })
      const first = get(gw, 'pp/a.bin')
      await until(() => proxy.counts.responseBytes > 0, 'the fill to start')
      await put(behind, 'pp/a.bin', v2)
      const purged = await fetch(`${gw.url}/_admin/purge`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ bucket: 'media', prefix: 'pp/' }) })
      assert.equal(purged.status, 200)
      assert.ok((await first).body.equals(v1), 'the GET begun before the purge gets the old bytes')
      proxy.configure({})
      const later = await get(gw, 'pp/a.bin')
      assert.equal(later.status, 200)
      assert.ok(later.body.equals(v2), 'after the purge, the store\'s new bytes (not the fill\'s old ones)')
    } finally {
      proxy.configure({})
      await gw.close()
    }
  })

  /** A store write that happened upstream but answered 500 (as after a timeout): the cache must not keep the old bytes. */
  describe('a write that fails after the store did it', () => {
    let gw: TestGateway
    before(async () => {
      gw = await startS3Gateway({ stores: new Map([['media', viaProxy()]]), raw: { stores: { media: STUB } }, readerBucket: 'media' })
    })
    after(async () => {
      proxy.configure({})
      await gw?.close()
    })

    it('DeleteObject: the cached copy is dropped even though the store answered an error', async () => {
      await put(behind, 'fail/del.bin', randomBytes(4 * KiB))
      await get(gw, 'fail/del.bin')
      assert.equal((await get(gw, 'fail/del.bin')).cg, 'hit=1')
      proxy.configure({ failAfterForward: ({ method }) => (method === 'DELETE' ? 500 : undefined) })
      const client = s3Client(gw.url)
      try {
        await assert.rejects(client.send(new DeleteObjectCommand({ Bucket: 'media', Key: 'fail/del.bin' })))
      } finally {
        client.destroy()
        proxy.configure({})
      }
      assert.equal((await behind.head('fail/del.bin')), null, 'the store deleted it')
      assert.equal((await get(gw, 'fail/del.bin')).status, 404)
    })

    it('a DeleteObject done while a PutObject waits for its answer: the PUT does not cache what the store no longer has', async () => {
      const v1 = await put(behind, 'race/put-del.bin', randomBytes(4 * KiB))
      proxy.reset()
      // The PUT reaches the store at once; its answer comes back 400 ms later.
      proxy.configure({ delayAnswerFor: ({ method }) => (method === 'PUT' ? 400 : undefined) })
      const client = s3Client(gw.url)
      try {
        const putting = client.send(new PutObjectCommand({ Bucket: 'media', Key: 'race/put-del.bin', Body: randomBytes(4 * KiB) }))
        putting.catch(() => {})
        await until(() => (proxy.counts.byMethod.PUT ?? 0) === 1, 'the PUT to reach the store')
        // The PUT is in the store (s3rver wrote it); its answer is held.
        for (let i = 0; i < 200 && (await behind.head('race/put-del.bin'))?.etag === v1.etag; i++) await sleep(5)
        assert.notEqual((await behind.head('race/put-del.bin'))?.etag, v1.etag)
        await client.send(new DeleteObjectCommand({ Bucket: 'media', Key: 'race/put-del.bin' }))
        await putting
      } finally {
        client.destroy()
        proxy.configure({})
      }
      assert.equal(await behind.head('race/put-del.bin'), null, 'the store applied the DELETE last')
      const later = await get(gw, 'race/put-del.bin')
      assert.equal(later.status, 404, `served what the store has (got ${later.status} ${later.cg})`)
    })

    it('PutObject: a read during the upload re-cached the old bytes; the failed write drops them', async () => {
      const v1 = randomBytes(4 * KiB)
      const v2 = randomBytes(4 * KiB)
      await put(behind, 'fail/put.bin', v1)
      proxy.reset()
      proxy.configure({ delayFor: ({ method }) => (method === 'PUT' ? 300 : undefined), failAfterForward: ({ method }) => (method === 'PUT' ? 500 : undefined) })
      const client = s3Client(gw.url)
      try {
        const putting = client.send(new PutObjectCommand({ Bucket: 'media', Key: 'fail/put.bin', Body: v2 }))
        putting.catch(() => {})
        await until(() => (proxy.counts.byMethod.PUT ?? 0) === 1, 'the PUT to reach the store')
        // The PUT's first invalidation is done: this read fills the cache with v1 again.
        assert.ok((await get(gw, 'fail/put.bin')).body.equals(v1))
        await assert.rejects(putting)
      } finally {
        client.destroy()
        proxy.configure({})
      }
      const stored = await behind.get('fail/put.bin')
      assert.ok(stored && Buffer.concat(await stored.body.toArray()).equals(v2), 'the store kept v2')
      const later = await get(gw, 'fail/put.bin')
      assert.ok(later.body.equals(v2), `served what the store has (got ${later.cg})`)
    })
  })
  /** Deletes straight in s3rver (the Store interface has no delete). */
  async function deleteBehind(key: string): Promise<void> {
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey } })
    try {
      await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }))
    } finally {
      client.destroy()
    }
  }

  describe('freshness review defects (object service over s3rver)', () => {
    const policy: FreshnessPolicy = { revalidateAfter: 30_000, maxStale: 0, negativeTtl: 60_000 }

    it('a PUT that ends while a revalidation that found a 404 drops the copy: no 404 is remembered for it', async () => {
      const clock = testClock()
      const watched = watchedCache(createMemoryCache({ maxBytes: 1 << 20, now: clock.now }))
      // max_object_size 8 KiB: the 16 KiB PUT below is not cached, so only the negative cache decides the next read.
      const objects = services(watched.cache, { now: clock.now, freshness: new Map([['media', policy]]) })
      const store = viaProxy()
      const key = 'neg/whole.bin'
      const ck = cacheKey('media', key)
      await put(behind, key, randomBytes(4 * KiB))
      await readObject((await objects.open(store, key, false))!)
      await until(() => watched.cache.peek?.(ck) !== undefined, 'the fill to be cached')
      await deleteBehind(key)
      clock.advance(31_000)

      // Past max_stale: the read waits for the revalidation, which gets a 404 and drops the copy...
      const held = watched.holdDelete(ck)
      const reading = objects.open(store, key, false)
      await until(held.reached, 'the revalidation to drop the copy')
      // ...while a PUT of a new version ends.
      const v2 = randomBytes(16 * KiB)
      await objects.write(store, key, Readable.from([v2]), { contentType: 'application/octet-stream', size: v2.length })
      held.release()
      await reading
      await objects.settled()

      const later = await objects.open(store, key, false)
      assert.ok(later, 'the object the PUT wrote is found, not a remembered 404')
      assert.ok((await readObject(later)).equals(v2))
    })

    it('a PUT that ends while a paged object\'s revalidation drops its pages: no 404 is remembered for it', async () => {
      const clock = testClock()
      const watched = watchedCache(createMemoryCache({ maxBytes: 1 << 20, now: clock.now }))
      const objects = services(watched.cache, { now: clock.now, pageSize: 1 * KiB, freshness: new Map([['media', policy]]) })
      const store = viaProxy()
      const key = 'neg/paged.bin'
      const ck = cacheKey('media', key)
      await put(behind, key, randomBytes(16 * KiB))
      await readObject((await objects.open(store, key, true))!, { start: 0, end: 99 })
      await until(() => watched.cache.peek?.(pageKey(ck, 0)) !== undefined, 'page 0 to be cached')
      await deleteBehind(key)
      clock.advance(31_000)

      const held = watched.holdDelete(pageKey(ck, 0))
      const reading = objects.open(store, key, true)
      await until(held.reached, 'the revalidation to drop the pages')
      const v2 = randomBytes(16 * KiB)
      await objects.write(store, key, Readable.from([v2]), { contentType: 'application/octet-stream', size: v2.length })
      held.release()
      await reading
      await objects.settled()

      const later = await objects.open(store, key, true)
      assert.ok(later, 'the object the PUT wrote is found, not a remembered 404')
      assert.ok((await readObject(later, { start: 0, end: 99 })).equals(v2.subarray(0, 100)))
    })

    it('a changed large object: only its cached pages are deleted, not every page number', async () => {
      const clock = testClock()
      const watched = watchedCache(createMemoryCache({ maxBytes: 1 << 20, now: clock.now }))
      // 1 MiB in 16-byte pages: 65,536 page numbers, of which the read below caches a handful.
      const objects = services(watched.cache, { now: clock.now, maxObjectSize: 64, pageSize: 16, freshness: new Map([['media', policy]]) })
      const store = viaProxy()
      const key = 'pages/large.bin'
      const ck = cacheKey('media', key)
      await put(behind, key, randomBytes(1024 * KiB))
      await readObject((await objects.open(store, key, true))!, { start: 0, end: 40 })
      await until(() => watched.cache.peek?.(pageKey(ck, 2)) !== undefined && objects.inflightFills() === 0, 'the pages read (and read ahead) to be cached')
      const cached = watched.cache.keys!(pagesPrefix(ck))
      assert.ok(cached.length >= 3 && cached.length < 10, `a few pages cached (${cached.length})`)

      const v2 = randomBytes(1024 * KiB)
      await put(behind, key, v2)
      clock.advance(31_000)
      watched.deleted.length = 0
      const later = await objects.open(store, key, true)
      assert.ok((await readObject(later!, { start: 0, end: 40 })).equals(v2.subarray(0, 41)))
      await objects.settled()
      const pageDeletes = watched.deleted.filter((deleted) => deleted.startsWith(pagesPrefix(ck)))
      // The count first: a diff of 65,536 keys against a handful would take assert minutes to print.
      assert.equal(pageDeletes.length, cached.length, `${pageDeletes.length} page deletes for ${cached.length} cached pages`)
      assert.deepEqual(pageDeletes.sort(), [...cached].sort(), 'exactly the pages that were cached')
    })

    it('verify_only: a ranged GET that joins a first GET of a too-large object never serves cached pages', async () => {
      const cache = createMemoryCache({ maxBytes: 1 << 20 })
      const objects = services(cache, { maxObjectSize: 32, pageSize: 16, verifyOnly: true })
      const store = viaProxy()
      const key = 'verify/large.bin'
      const ck = cacheKey('media', key)
      const bytes = randomBytes(1 * KiB)
      const meta = await put(behind, key, bytes)
      // A cached page of this very version whose bytes went bad: what verify_only is there to catch.
      await cache.set(pageKey(ck, 0), { ...meta, size: 16 }, Buffer.alloc(16, 'X'))
      proxy.reset()
      // The first GET's answer is held, so the ranged GET below surely joins its flight.
      proxy.configure({ delayAnswerFor: ({ method }) => (method === 'GET' ? 300 : undefined) })
      try {
        const first = objects.open(store, key, false)
        await until(() => (proxy.counts.byMethod.GET ?? 0) === 1, 'the first GET to reach the store')
        const ranged = await objects.open(store, key, true)
        assert.ok(ranged)
        assert.notEqual(ranged.source, 'page', 'not read through the page cache')
        assert.ok((await readObject(ranged, { start: 0, end: 15 })).equals(bytes.subarray(0, 16)), 'the store\'s bytes, not the cached page')
        const whole = await first
        assert.ok(whole && (await readObject(whole)).equals(bytes))
      } finally {
        proxy.configure({})
      }
    })
  })
})

describe('purge and the disk tier\'s writes still under way', () => {
  /** The real fs, with every rename (the last step of an entry write) held while `held` is set. */
  function holdingFs() {
    let held: ReturnType<typeof gate> | undefined
    let waiting = 0
    const fs: DiskFs = {
      ...nodeFs,
      async rename(from, to) {
        if (held) {
          waiting++
          await held.wait()
        }
        return nodeFs.rename(from, to)
      },
    }
    return { fs, waiting: () => waiting, hold: () => (held = gate()), release: () => held?.open() }
  }

  for (const what of [{ prefix: 'dp/' }, { path: 'dp/a.bin' }]) {
    it(`a purge by ${'prefix' in what ? 'prefix' : 'path'} cancels a disk write that has not landed: it is not cached after the purge`, async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-purge-pending-'))
      const held = holdingFs()
      const disk = await openDiskCache({ path: dir, maxBytes: 1 << 22, fs: held.fs })
      try {
        const objects = services(disk)
        const ck = cacheKey('media', 'dp/a.bin')
        const bytes = randomBytes(4 * KiB)
        held.hold()
        const setting = disk.set(ck, { size: bytes.length, contentType: 'application/octet-stream', etag: '"old"' }, bytes)
        await until(() => held.waiting() === 1, 'the write to reach its rename')
        await objects.purge('media', what)
        held.release()
        await setting
        await disk.close()
        assert.equal(await disk.get(ck), undefined, 'the write begun before the purge did not land after it')
        assert.deepEqual(disk.keys!(''), [])
      } finally {
        held.release()
        await disk.close()
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})

describe('azure listing and the reserved prefix', () => {
  let az: AzuriteHandle
  before(async () => {
    az = await startAzurite()
  })
  after(async () => {
    await az?.close()
  })

  it('keys that are only a beginning of .cachegate-multipart/ are listed (only what is under it is hidden)', async () => {
    const store = createAzureStore({ id: 'media', container: az.container, connectionString: az.connectionString, maxAttempts: 1 })
    const keys = ['.c', '.cachegate', '.cachegate-multipart', 'plain.txt']
    for (const key of keys) await put(store, key, randomBytes(16))
    const uploadId = await store.createMultipart!('plain.txt', { contentType: 'text/plain' })
    assert.ok(uploadId)
    const listed = await store.list!({ maxKeys: 1000 })
    assert.deepEqual(listed.objects.map((entry) => entry.key), keys)
    const byDir = await store.list!({ maxKeys: 1000, delimiter: '/' })
    assert.deepEqual(byDir.objects.map((entry) => entry.key), keys)
    assert.deepEqual(byDir.commonPrefixes, [], 'the multipart records stay hidden')
  })
})

describe('ListObjects (v1) paged by NextMarker over an S3 store', () => {
  let s3: S3rverHandle
  let gw: TestGateway
  before(async () => {
    s3 = await startS3rver()
    const store = createS3Store({ id: 'media', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey, maxAttempts: 1 })
    for (const key of ['a/1', 'a/2', 'b/1', 'c']) await put(store, key, randomBytes(8))
    gw = await startS3Gateway({ stores: new Map([['media', store]]), raw: { stores: { media: STUB } }, readerBucket: 'media' })
  })
  after(async () => {
    await gw?.close()
    await s3?.close()
  })

  it('CopyObject of a key onto itself with MetadataDirective REPLACE and no Content-Type succeeds (a metadata rewrite)', async () => {
    const client = s3Client(gw.url)
    try {
      const copied = await client.send(new CopyObjectCommand({ Bucket: 'media', Key: 'c', CopySource: 'media/c', MetadataDirective: 'REPLACE' }))
      assert.ok(copied.CopyObjectResult?.ETag)
      const head = await client.send(new HeadObjectCommand({ Bucket: 'media', Key: 'c' }))
      assert.equal(head.ContentLength, 8)
    } finally {
      client.destroy()
    }
  })

  it('a common prefix given back as the marker is not listed again (no endless paging)', async () => {
    const client = s3Client(gw.url)
    try {
      const first = await client.send(new ListObjectsCommand({ Bucket: 'media', Delimiter: '/' }))
      assert.deepEqual(first.CommonPrefixes?.map((p) => p.Prefix), ['a/', 'b/'])
      const next = await client.send(new ListObjectsCommand({ Bucket: 'media', Delimiter: '/', Marker: 'a/' }))
      assert.deepEqual(next.CommonPrefixes?.map((p) => p.Prefix), ['b/'])
      assert.deepEqual(next.Contents?.map((o) => o.Key), ['c'])
    } finally {
      client.destroy()
    }
  })
})
