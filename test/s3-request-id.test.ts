/**
 * Every S3 answer carries its own `x-amz-request-id`, however it is written: the shared read
 * handlers (GetObject, HeadObject: memory hit, miss, ranges, 304, 412, 404) are given it, every
 * other answer gets it from its tagged `writeHead` (src/s3/request-id.ts), errors from sendError.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type RawResponse, type TestGateway, rawRequest } from './helpers/gateway.ts'
import { FULL, startS3Gateway } from './helpers/s3-gateway.ts'
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
    assert.ok(!seen.has(id as string), `${method} ${target} ${status}: request id ${id} repeated`)
    seen.add(id as string)
    return res
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
})
