/**
 * Every S3 answer carries its own `x-amz-request-id`, however it is written: the shared read
 * handlers (GetObject, HeadObject: memory hit, miss, ranges, 304, 412, 404) are given it, every
 * other answer gets it from its tagged `writeHead` (src/s3/request-id.ts), errors from sendError.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand, DeleteObjectsCommand, GetObjectCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { BEARER, type RawResponse, type TestGateway, rawRequest } from './helpers/gateway.ts'
import { FULL, s3Client, startS3Gateway } from './helpers/s3-gateway.ts'
import { sha256Hex, sign } from './helpers/s3-sign.ts'

describe('S3 API: x-amz-request-id on every answer', () => {
  let gw: TestGateway
  const seen = new Set<string>()

  before(async () => {
    gw = await startS3Gateway()
  })
  after(() => gw?.close())

  /** A signed request; asserts the answer's status and a request id not seen before. */
  async function call(method: string, target: string, status: number, headers: Record<string, string> = {}, body?: string, credentials = FULL): Promise<RawResponse> {
    const payload = body === undefined ? 'UNSIGNED-PAYLOAD' : sha256Hex(body)
    const signed = await sign(gw.url, method, target, headers, payload, credentials)
    const res = await rawRequest(gw.url, method, target, signed.headers, body)
    assert.equal(res.status, status, `${method} ${target}: ${res.body.toString()}`)
    const id = res.headers['x-amz-request-id']
    assert.equal(typeof id, 'string', `${method} ${target} ${status}: no x-amz-request-id`)
    assert.match(id as string, /^[0-9A-F]{16,}$/)
    fresh(id as string, `${method} ${target} ${status}`)
    return res
  }

  function fresh(id: string | undefined, what: string): void {
    assert.ok(id, `${what}: no request id`)
    assert.ok(!seen.has(id), `${what}: request id ${id} repeated`)
    seen.add(id)
  }

  it('object reads: miss, hit, one range, several ranges, 304, 412, 404, overrides', async () => {
    // Written straight into the store: the first GET is a miss.
    await writeFile(path.join(gw.root, 'direct.txt'), 'written behind the cache')
    assert.equal((await call('GET', '/local/direct.txt', 200)).headers['x-cg-status'], 'hit=0')
    const hit = await call('GET', '/local/direct.txt', 200)
    assert.equal(hit.headers['x-cg-status'], 'hit=1')
    assert.equal(hit.body.toString(), 'written behind the cache')
    const etag = hit.headers.etag!
    assert.equal((await call('GET', '/local/direct.txt', 206, { range: 'bytes=0-6' })).body.toString(), 'written')
    const parts = await call('GET', '/local/direct.txt', 206, { range: 'bytes=0-1,4-5' })
    assert.match(parts.headers['content-type']!, /^multipart\/byteranges/)
    await call('GET', '/local/direct.txt', 304, { 'if-none-match': etag })
    await call('GET', '/local/direct.txt', 412, { 'if-match': '"not-it"' })
    await call('GET', '/local/direct.txt', 416, { range: 'bytes=999-' })
    assert.match((await call('GET', '/local/missing.txt', 404)).body.toString(), /<Code>NoSuchKey<\/Code>/)
    const overridden = await call('GET', '/local/direct.txt?response-content-type=text%2Fcsv', 200)
    assert.equal(overridden.headers['content-type'], 'text/csv')
    // One range of an object not in the cache.
    await writeFile(path.join(gw.root, 'direct-range.txt'), 'a range of a miss')
    assert.equal((await call('GET', '/local/direct-range.txt', 206, { range: 'bytes=2-6' })).body.toString(), 'range')
    // A presigned URL.
    const url = await getSignedUrl(s3Client(gw.url), new GetObjectCommand({ Bucket: 'local', Key: 'direct.txt' }), { expiresIn: 60 })
    const presigned = await fetch(url)
    assert.equal(presigned.status, 200)
    fresh(presigned.headers.get('x-amz-request-id') ?? undefined, 'presigned GET')
  })

  it('the cached headers bearer clients share never carry an S3 request id', async () => {
    await call('PUT', '/local/shared.txt', 200, {}, 'shared by both dialects')
    for (let round = 0; round < 2; round++) {
      await call('GET', '/local/shared.txt', 200)
      await call('HEAD', '/local/shared.txt', 200)
      for (const method of ['GET', 'HEAD']) {
        const bearer = await rawRequest(gw.url, method, '/local/shared.txt', { authorization: `Bearer ${BEARER}` })
        assert.equal(bearer.status, 200)
        assert.equal(bearer.headers['x-cg-status'], 'hit=1')
        assert.equal(bearer.headers['x-amz-request-id'], undefined, `bearer ${method} after S3 reads`)
      }
    }
  })

  it('HEAD: hit, 304, 404', async () => {
    await call('PUT', '/local/head.txt', 200, {}, 'head me')
    const head = await call('HEAD', '/local/head.txt', 200)
    assert.equal(head.headers['content-length'], '7')
    await call('HEAD', '/local/head.txt', 304, { 'if-none-match': head.headers.etag! })
    await call('HEAD', '/local/nothing-here.txt', 404)
  })

  it('writes, lists, deletes, bucket operations and auth failures', async () => {
    await call('PUT', '/local/w.txt', 200, {}, 'w')
    await call('GET', '/local?list-type=2', 200)
    await call('HEAD', '/local', 200)
    await call('GET', '/', 200)
    await call('DELETE', '/local/w.txt', 204)
    await call('GET', '/local/w.txt', 403, {}, undefined, { accessKeyId: FULL.accessKeyId, secretAccessKey: 'not-the-secret-0123456789' })
    await call('GET', '/nope/x.txt', 404)
  })

  it('copies, multipart uploads and multi-deletes (through the AWS SDK, which reads the id as $metadata.requestId)', async () => {
    const client = s3Client(gw.url)
    const Bucket = 'local'
    fresh((await client.send(new PutObjectCommand({ Bucket, Key: 'sdk/a.txt', Body: 'a' }))).$metadata.requestId, 'PutObject')
    fresh((await client.send(new CopyObjectCommand({ Bucket, Key: 'sdk/b.txt', CopySource: 'local/sdk/a.txt' }))).$metadata.requestId, 'CopyObject')
    const created = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: 'sdk/m.bin' }))
    fresh(created.$metadata.requestId, 'CreateMultipartUpload')
    const part = await client.send(new UploadPartCommand({ Bucket, Key: 'sdk/m.bin', UploadId: created.UploadId, PartNumber: 1, Body: 'part one' }))
    fresh(part.$metadata.requestId, 'UploadPart')
    const completed = await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'sdk/m.bin', UploadId: created.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }))
    fresh(completed.$metadata.requestId, 'CompleteMultipartUpload')
    const deleted = await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: 'sdk/a.txt' }, { Key: 'sdk/b.txt' }] } }))
    fresh(deleted.$metadata.requestId, 'DeleteObjects')
    assert.equal(deleted.Deleted?.length, 2)
  })
})
