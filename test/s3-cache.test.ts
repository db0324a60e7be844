/**
 * The S3 front end shares the object service with the bearer/presigned routes: one cache key
 * (bucket id + key), one singleflight, one invalidation. Upstream requests are counted by a
 * proxy in front of s3rver.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, beforeEach, describe, it } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { createS3Store } from '../src/stores/s3.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { type S3rverHandle, startS3rver } from './helpers/emulators.ts'
import { BEARER, type TestGateway, rawRequest } from './helpers/gateway.ts'
import { s3Client, startS3Gateway } from './helpers/s3-gateway.ts'

describe('S3 API and the cache', () => {
  let s3: S3rverHandle
  let proxy: CountingProxy
  let gw: TestGateway
  let client: S3Client
  const Bucket = 'media'

  before(async () => {
    s3 = await startS3rver()
    proxy = await startCountingProxy(s3.endpoint)
    const store = createS3Store({ id: 'media', bucket: s3.bucket, endpoint: proxy.url, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey, maxAttempts: 1 })
    gw = await startS3Gateway({ stores: new Map([['media', store]]), raw: { stores: { media: { type: 'fs', root: '/unused' } } }, readerBucket: 'media' })
    client = s3Client(gw.url)
  })
  after(async () => {
    client?.destroy()
    await gw?.close()
    await proxy?.close()
    await s3?.close()
  })
  beforeEach(() => proxy.configure({}))

  const s3Get = async (Key: string) => Buffer.from(await (await client.send(new GetObjectCommand({ Bucket, Key }))).Body!.transformToByteArray())
  const bearerGet = (key: string) => rawRequest(gw.url, 'GET', `/${Bucket}/${key}`, { Authorization: `Bearer ${BEARER}` })
  const upstreamGets = () => proxy.counts.byMethod.GET ?? 0

  it('the second GetObject is a hit; a bearer GET of the same key is a hit too, and the other way round', async () => {
    const bytes = randomBytes(20_000)
    await client.send(new PutObjectCommand({ Bucket, Key: 'hits/a.bin', Body: bytes }))
    await client.send(new PutObjectCommand({ Bucket, Key: 'hits/b.bin', Body: bytes }))
    proxy.reset()
    assert.deepEqual(await s3Get('hits/a.bin'), bytes)
    assert.deepEqual(await s3Get('hits/a.bin'), bytes)
    const bearer = await bearerGet('hits/a.bin')
    assert.equal(bearer.headers['x-cg-status'], 'hit=1')
    assert.deepEqual(bearer.body, bytes)
    assert.equal(upstreamGets(), 0, 'the PUT through S3 cached the object like a bearer PUT')

    // Cold: written straight to s3rver, behind the gateway's back.
    const direct = createS3Store({ id: 'direct', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey })
    await direct.put('hits/cold.bin', Readable.from([bytes]), { contentType: 'application/octet-stream', size: bytes.length })
    await direct.put('hits/cold2.bin', Readable.from([bytes]), { contentType: 'application/octet-stream', size: bytes.length })
    proxy.reset()
    assert.deepEqual(await s3Get('hits/cold.bin'), bytes)
    assert.equal(upstreamGets(), 1)
    assert.deepEqual(await s3Get('hits/cold.bin'), bytes)
    assert.equal((await bearerGet('hits/cold.bin')).headers['x-cg-status'], 'hit=1')
    assert.equal(upstreamGets(), 1, 'one upstream GET for three reads over both front ends')

    assert.equal((await bearerGet('hits/cold2.bin')).headers['x-cg-status'], 'hit=0')
    assert.deepEqual(await s3Get('hits/cold2.bin'), bytes)
    assert.equal(upstreamGets(), 2)
  })

  it('singleflight holds across front ends: a bearer GET and an S3 GET of one cold object make one upstream GET', async () => {
    const bytes = randomBytes(50_000)
    const direct = createS3Store({ id: 'direct', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey })
    await direct.put('flight/one.bin', Readable.from([bytes]), { contentType: 'application/octet-stream', size: bytes.length })
    proxy.reset()
    // Every upstream GET waits, so the two requests surely overlap.
    proxy.configure({ delayFor: ({ method }) => (method === 'GET' ? 300 : 0) })
    const [viaS3, viaBearer] = await Promise.all([s3Get('flight/one.bin'), bearerGet('flight/one.bin')])
    assert.deepEqual(viaS3, bytes)
    assert.deepEqual(viaBearer.body, bytes)
    assert.equal(upstreamGets(), 1)
  })

  it('PutObject, DeleteObject, CopyObject and CompleteMultipartUpload invalidate what the bearer route cached', async () => {
    const one = Buffer.from('version one')
    const two = Buffer.from('version two')
    await client.send(new PutObjectCommand({ Bucket, Key: 'inv/a.txt', Body: one }))
    assert.deepEqual((await bearerGet('inv/a.txt')).body, one)
    await client.send(new PutObjectCommand({ Bucket, Key: 'inv/a.txt', Body: two }))
    assert.deepEqual((await bearerGet('inv/a.txt')).body, two)

    await client.send(new DeleteObjectCommand({ Bucket, Key: 'inv/a.txt' }))
    assert.equal((await bearerGet('inv/a.txt')).status, 404)

    await client.send(new PutObjectCommand({ Bucket, Key: 'inv/src.txt', Body: one }))
    await client.send(new PutObjectCommand({ Bucket, Key: 'inv/dst.txt', Body: two }))
    assert.deepEqual((await bearerGet('inv/dst.txt')).body, two)
    await client.send(new CopyObjectCommand({ Bucket, Key: 'inv/dst.txt', CopySource: `${Bucket}/inv/src.txt` }))
    assert.deepEqual((await bearerGet('inv/dst.txt')).body, one)

    const part = randomBytes(5 * 1024 * 1024)
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: 'inv/dst.txt' }))
    const { ETag } = await client.send(new UploadPartCommand({ Bucket, Key: 'inv/dst.txt', UploadId, PartNumber: 1, Body: part }))
    await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'inv/dst.txt', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag }] } }))
    const after = await bearerGet('inv/dst.txt')
    assert.equal(after.headers['x-cg-status'], 'hit=0')
    assert.deepEqual(after.body, part)
  })
})
