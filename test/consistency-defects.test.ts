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
import { CopyObjectCommand, DeleteObjectCommand, HeadObjectCommand, ListObjectsCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { createAzureStore } from '../src/stores/azure.ts'
import { createS3Store } from '../src/stores/s3.ts'
import type { Store } from '../src/stores/types.ts'
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
