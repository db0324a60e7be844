/**
 * The S3 front end through the AWS SDK for JavaScript v3 (a client nobody here wrote), with its
 * defaults (CRC32 checksums; aws-chunked bodies with a checksum trailer for streams), against
 * an fs store, an S3 store (s3rver) and an Azure store (Azurite).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetBucketLocationCommand,
  HeadBucketCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListPartsCommand,
  UploadPartCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { createAzureStore } from '../src/stores/azure.ts'
import { createS3Store } from '../src/stores/s3.ts'
import type { Store } from '../src/stores/types.ts'
import { type AzuriteHandle, type S3rverHandle, startAzurite, startS3rver } from './helpers/emulators.ts'
import type { TestGateway } from './helpers/gateway.ts'
import { prng } from './helpers/prng.ts'
import { FULL, s3Client, startS3Gateway } from './helpers/s3-gateway.ts'

function bytes(size: number, seed: number): Buffer {
  const random = prng(seed)
  const out = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4) out.writeUInt32LE(Math.floor(random() * 2 ** 32), i)
  return out
}

/** A stream of `total` pseudo-random bytes, produced as read (never whole in memory), and its SHA-256. */
function streamOf(total: number, seed: number): { body: Readable; sha256: string } {
  const block = bytes(1024 * 1024, seed)
  const hash = createHash('sha256')
  for (let sent = 0; sent < total; sent += block.length) hash.update(block.subarray(0, Math.min(block.length, total - sent)))
  let sent = 0
  const body = new Readable({
    read() {
      if (sent >= total) return void this.push(null)
      const slice = block.subarray(0, Math.min(block.length, total - sent))
      sent += slice.length
      this.push(slice)
    },
  })
  return { body, sha256: hash.digest('hex') }
}

async function sha256Of(body: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of body) {
    hash.update(chunk)
    size += chunk.length
  }
  return { sha256: hash.digest('hex'), size }
}

async function s3Code(promise: Promise<unknown>): Promise<{ code: string; status: number | undefined }> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof S3ServiceException, `expected an S3 error, got ${String(error)}`)
    return { code: error.name, status: error.$metadata.httpStatusCode }
  }
  assert.fail('expected the request to fail')
}

interface Backend {
  name: string
  bucket: string
  /** s3rver answers a truncated ListObjectsV2 page with InternalError (the store conformance suite skips it too). */
  noPaging?: boolean
  /** s3rver has no ListParts and no AbortMultipartUpload (the store conformance suite skips them too). */
  noPartListing?: boolean
  start(): Promise<{ stores?: Map<string, Store>; raw?: Record<string, unknown>; close(): Promise<void> }>
}

const BACKENDS: Backend[] = [
  { name: 'fs', bucket: 'local', start: async () => ({ close: async () => {} }) },
  {
    name: 's3 (s3rver)',
    bucket: 'media',
    noPaging: true,
    noPartListing: true,
    async start() {
      const s3: S3rverHandle = await startS3rver()
      const store = createS3Store({ id: 'media', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey })
      return { stores: new Map([['media', store]]), raw: { stores: { media: { type: 'fs', root: '/unused' } } }, close: () => s3.close() }
    },
  },
  {
    name: 'azure (Azurite)',
    bucket: 'blobs',
    async start() {
      const azure: AzuriteHandle = await startAzurite()
      const store = createAzureStore({ id: 'blobs', container: azure.container, connectionString: azure.connectionString })
      return { stores: new Map([['blobs', store]]), raw: { stores: { blobs: { type: 'fs', root: '/unused' } } }, close: () => azure.close() }
    },
  },
]

for (const backend of BACKENDS) {
  describe(`S3 API over the AWS SDK: ${backend.name} store`, () => {
    let gw: TestGateway
    let client: S3Client
    let closeBackend: () => Promise<void>
    const Bucket = backend.bucket

    before(async () => {
      const started = await backend.start()
      closeBackend = started.close
      gw = await startS3Gateway({ stores: started.stores, raw: started.raw, readerBucket: Bucket })
      client = s3Client(gw.url)
    })
    after(async () => {
      client?.destroy()
      await gw?.close()
      await closeBackend?.()
    })

    it('puts, gets, heads, lists, copies and deletes', async () => {
      const body = bytes(10_000, 1)
      const put = await client.send(new PutObjectCommand({ Bucket, Key: 'docs/one.bin', Body: body, ContentType: 'application/x-test' }))
      assert.match(put.ETag ?? '', /^".+"$/)
      const got = await client.send(new GetObjectCommand({ Bucket, Key: 'docs/one.bin' }))
      assert.equal(got.ContentType, 'application/x-test')
      assert.equal(got.ContentLength, body.length)
      assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body)
      const head = await client.send(new HeadObjectCommand({ Bucket, Key: 'docs/one.bin' }))
      assert.equal(head.ContentLength, body.length)
      assert.equal(head.ETag, got.ETag)

      await client.send(new PutObjectCommand({ Bucket, Key: 'docs/sub/two.txt', Body: 'two' }))
      await client.send(new PutObjectCommand({ Bucket, Key: 'docs/a b+c.txt', Body: 'spaces and plus' }))
      const listed = await client.send(new ListObjectsV2Command({ Bucket, Prefix: 'docs/', Delimiter: '/' }))
      assert.deepEqual(listed.Contents?.map((c) => c.Key), ['docs/a b+c.txt', 'docs/one.bin'])
      assert.deepEqual(listed.CommonPrefixes?.map((c) => c.Prefix), ['docs/sub/'])
      assert.equal(listed.Contents?.[1]?.Size, body.length)

      // Pages: a continuation token carries on where the page stopped.
      if (!backend.noPaging) await checkPaging()
      async function checkPaging() {
        const page1 = await client.send(new ListObjectsV2Command({ Bucket, Prefix: 'docs/', MaxKeys: 2 }))
        assert.equal(page1.IsTruncated, true)
        assert.equal(page1.KeyCount, 2)
        const page2 = await client.send(new ListObjectsV2Command({ Bucket, Prefix: 'docs/', MaxKeys: 2, ContinuationToken: page1.NextContinuationToken }))
        assert.deepEqual([...page1.Contents!, ...page2.Contents!].map((c) => c.Key), ['docs/a b+c.txt', 'docs/one.bin', 'docs/sub/two.txt'])
      }

      const copied = await client.send(new CopyObjectCommand({ Bucket, Key: 'docs/copy.bin', CopySource: `${Bucket}/docs/one.bin` }))
      assert.ok(copied.CopyObjectResult?.ETag)
      const copy = await client.send(new GetObjectCommand({ Bucket, Key: 'docs/copy.bin' }))
      assert.deepEqual(Buffer.from(await copy.Body!.transformToByteArray()), body)

      await client.send(new DeleteObjectCommand({ Bucket, Key: 'docs/copy.bin' }))
      assert.deepEqual(await s3Code(client.send(new GetObjectCommand({ Bucket, Key: 'docs/copy.bin' }))), { code: 'NoSuchKey', status: 404 })
      const deleted = await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: 'docs/sub/two.txt' }, { Key: 'docs/a b+c.txt' }] } }))
      assert.deepEqual(deleted.Deleted?.map((d) => d.Key).sort(), ['docs/a b+c.txt', 'docs/sub/two.txt'])
      const left = await client.send(new ListObjectsV2Command({ Bucket, Prefix: 'docs/' }))
      assert.deepEqual(left.Contents?.map((c) => c.Key), ['docs/one.bin'])
    })

    it('a stream upload goes aws-chunked with a CRC32 trailer (the SDK default)', async () => {
      const { body, sha256 } = streamOf(3 * 1024 * 1024 + 17, 2)
      await client.send(new PutObjectCommand({ Bucket, Key: 'chunked.bin', Body: body, ContentLength: 3 * 1024 * 1024 + 17 }))
      const got = await client.send(new GetObjectCommand({ Bucket, Key: 'chunked.bin' }))
      assert.deepEqual(await sha256Of(got.Body as Readable), { sha256, size: 3 * 1024 * 1024 + 17 })
    })

    it('a 100 MiB multipart upload through lib-storage', async () => {
      const size = 100 * 1024 * 1024
      const { body, sha256 } = streamOf(size, 3)
      const upload = new Upload({ client, params: { Bucket, Key: 'big/hundred.bin', Body: body }, partSize: 8 * 1024 * 1024, queueSize: 2 })
      const done = await upload.done()
      assert.ok(done.ETag)
      const head = await client.send(new HeadObjectCommand({ Bucket, Key: 'big/hundred.bin' }))
      assert.equal(head.ContentLength, size)
      const got = await client.send(new GetObjectCommand({ Bucket, Key: 'big/hundred.bin' }))
      assert.deepEqual(await sha256Of(got.Body as Readable), { sha256, size })
    })

    it('ranged and conditional GetObject', async () => {
      const body = bytes(4096, 4)
      const { ETag } = await client.send(new PutObjectCommand({ Bucket, Key: 'ranged.bin', Body: body }))
      const ranged = await client.send(new GetObjectCommand({ Bucket, Key: 'ranged.bin', Range: 'bytes=100-199' }))
      assert.equal(ranged.$metadata.httpStatusCode, 206)
      assert.equal(ranged.ContentRange, 'bytes 100-199/4096')
      assert.deepEqual(Buffer.from(await ranged.Body!.transformToByteArray()), body.subarray(100, 200))
      assert.deepEqual(await s3Code(client.send(new GetObjectCommand({ Bucket, Key: 'ranged.bin', Range: 'bytes=5000-' }))), { code: 'InvalidRange', status: 416 })
      assert.equal((await s3Code(client.send(new GetObjectCommand({ Bucket, Key: 'ranged.bin', IfNoneMatch: ETag })))).status, 304)
      assert.deepEqual(await s3Code(client.send(new GetObjectCommand({ Bucket, Key: 'ranged.bin', IfMatch: '"not-it"' }))), { code: 'PreconditionFailed', status: 412 })
      const matched = await client.send(new GetObjectCommand({ Bucket, Key: 'ranged.bin', IfMatch: ETag }))
      assert.equal(matched.ContentLength, 4096)
      await matched.Body!.transformToByteArray()
    })

    it('presigned GET and PUT URLs', async () => {
      const body = bytes(2048, 5)
      // As against S3, the SDK's default puts the CRC32 of an empty body in a presigned PUT URL
      // (which the upload would then have to match): presign without it.
      const presigner = s3Client(gw.url, FULL, { requestChecksumCalculation: 'WHEN_REQUIRED' })
      const putUrl = await getSignedUrl(presigner, new PutObjectCommand({ Bucket, Key: 'presigned/file.bin' }), { expiresIn: 300 })
      const put = await fetch(putUrl, { method: 'PUT', body: new Uint8Array(body) })
      assert.equal(put.status, 200, await put.text())
      const getUrl = await getSignedUrl(client, new GetObjectCommand({ Bucket, Key: 'presigned/file.bin', ResponseContentDisposition: 'attachment; filename="x.bin"' }), { expiresIn: 300 })
      const got = await fetch(getUrl)
      assert.equal(got.status, 200)
      assert.equal(got.headers.get('content-disposition'), 'attachment; filename="x.bin"')
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), body)
      // The signature covers the method: the GET link does not upload.
      const refused = await fetch(getUrl, { method: 'PUT', body: 'nope' })
      assert.equal(refused.status, 403)
      assert.match(await refused.text(), /<Code>SignatureDoesNotMatch<\/Code>/)
    })

    it('bucket operations, ListObjects v1, and multipart bookkeeping', async () => {
      const head = await client.send(new HeadBucketCommand({ Bucket }))
      assert.equal(head.$metadata.httpStatusCode, 200)
      const location = await client.send(new GetBucketLocationCommand({ Bucket }))
      assert.equal(location.LocationConstraint ?? '', '')
      const buckets = await client.send(new ListBucketsCommand({}))
      assert.deepEqual(buckets.Buckets?.map((b) => b.Name), [Bucket])
      await client.send(new PutObjectCommand({ Bucket, Key: 'v1/a.txt', Body: 'a' }))
      await client.send(new PutObjectCommand({ Bucket, Key: 'v1/b/c.txt', Body: 'c' }))
      const v1 = await client.send(new ListObjectsCommand({ Bucket, Prefix: 'v1/', Delimiter: '/' }))
      assert.deepEqual(v1.Contents?.map((c) => c.Key), ['v1/a.txt'])
      assert.deepEqual(v1.CommonPrefixes?.map((c) => c.Prefix), ['v1/b/'])

      const Key = 'mpu/aborted.bin'
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }))
      assert.ok(UploadId)
      const { ETag } = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: bytes(5 * 1024 * 1024, 6) }))
      if (backend.noPartListing) return
      const parts = await client.send(new ListPartsCommand({ Bucket, Key, UploadId }))
      assert.deepEqual(parts.Parts?.map((p) => [p.PartNumber, p.ETag, p.Size]), [[1, ETag, 5 * 1024 * 1024]])
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }))
      assert.deepEqual(await s3Code(client.send(new ListPartsCommand({ Bucket, Key, UploadId }))), { code: 'NoSuchUpload', status: 404 })
      assert.deepEqual(await s3Code(client.send(new GetObjectCommand({ Bucket, Key }))), { code: 'NoSuchKey', status: 404 })
    })

    it('missing objects, unknown buckets and unsupported subresources answer in S3 terms', async () => {
      assert.deepEqual(await s3Code(client.send(new GetObjectCommand({ Bucket, Key: 'nope/missing' }))), { code: 'NoSuchKey', status: 404 })
      assert.deepEqual(await s3Code(client.send(new HeadObjectCommand({ Bucket, Key: 'nope/missing' }))), { code: 'NotFound', status: 404 })
      assert.deepEqual(await s3Code(client.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'x' }))), { code: 'NoSuchBucket', status: 404 })
    })
  })
}
