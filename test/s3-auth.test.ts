/**
 * S3 front end: who may do what, and bodies that must not be stored. Requests are signed with
 * the AWS SDK (or `@smithy/signature-v4`, the SDK's signer); the aws-chunked bodies are written
 * by hand here, chunk signatures included, so a tampered one can be sent.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createHmac } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { createApp } from '../src/app.ts'
import { createMemoryCache } from '../src/cache/memory.ts'
import { validateConfig } from '../src/config/load.ts'
import { createLogger } from '../src/log.ts'
import { createFsStore } from '../src/stores/fs.ts'
import { BEARER, type TestGateway, rawRequest, startGateway, tempDir } from './helpers/gateway.ts'
import { FULL, READER, REGION, s3Api, s3Client, startS3Gateway } from './helpers/s3-gateway.ts'
import { type Signed, sha256Hex, sign } from './helpers/s3-sign.ts'

const sha256 = sha256Hex

/** An aws-chunked body signed chunk by chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD); `tamper` flips a byte of chunk `tamper`'s data after signing. */
function signedChunks(signed: Signed, chunks: Buffer[], tamper?: number): Buffer {
  let previous = signed.signature
  const parts: Buffer[] = []
  for (const [index, data] of [...chunks, Buffer.alloc(0)].entries()) {
    const text = ['AWS4-HMAC-SHA256-PAYLOAD', signed.amzDate, signed.scope, previous, sha256(''), sha256(data)].join('\n')
    const signature = createHmac('sha256', signed.signingKey).update(text).digest('hex')
    previous = signature
    const sent = Buffer.from(data)
    if (index === tamper) sent[0] = sent[0]! ^ 1
    parts.push(Buffer.from(`${data.length.toString(16)};chunk-signature=${signature}\r\n`), sent, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: signed chunks, then a checksum trailer signed on the last chunk's signature. */
function signedChunksWithTrailer(signed: Signed, chunks: Buffer[], checksum: string, tamperTrailer = false): Buffer {
  let previous = signed.signature
  const parts: Buffer[] = []
  for (const data of [...chunks, Buffer.alloc(0)]) {
    const text = ['AWS4-HMAC-SHA256-PAYLOAD', signed.amzDate, signed.scope, previous, sha256(''), sha256(data)].join('\n')
    previous = createHmac('sha256', signed.signingKey).update(text).digest('hex')
    parts.push(Buffer.from(`${data.length.toString(16)};chunk-signature=${previous}\r\n`), data)
    if (data.length > 0) parts.push(Buffer.from('\r\n'))
  }
  const trailer = `x-amz-checksum-crc32:${checksum}\n`
  const text = ['AWS4-HMAC-SHA256-TRAILER', signed.amzDate, signed.scope, previous, sha256(trailer)].join('\n')
  let signature = createHmac('sha256', signed.signingKey).update(text).digest('hex')
  if (tamperTrailer) signature = `${signature[0] === '0' ? '1' : '0'}${signature.slice(1)}`
  parts.push(Buffer.from(`x-amz-checksum-crc32:${checksum}\r\nx-amz-trailer-signature:${signature}\r\n\r\n`))
  return Buffer.concat(parts)
}

/** STREAMING-UNSIGNED-PAYLOAD-TRAILER with an x-amz-checksum-crc32 trailer of `checksum`. */
function unsignedTrailerBody(chunks: Buffer[], checksum: string): Buffer {
  const parts: Buffer[] = []
  for (const data of chunks) parts.push(Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n'))
  parts.push(Buffer.from(`0\r\nx-amz-checksum-crc32:${checksum}\r\n\r\n`))
  return Buffer.concat(parts)
}

const crc32Base64 = async (data: Buffer) => {
  const { crc32 } = await import('node:zlib')
  const out = Buffer.alloc(4)
  out.writeUInt32BE(crc32(data))
  return out.toString('base64')
}

async function s3Error(promise: Promise<unknown>): Promise<{ code: string; status?: number }> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof S3ServiceException, String(error))
    return { code: error.name, status: error.$metadata.httpStatusCode }
  }
  assert.fail('expected an S3 error')
}

const codeOf = (body: Buffer) => /<Code>([^<]+)<\/Code>/.exec(body.toString())?.[1]

describe('S3 API: authentication and scopes', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startS3Gateway()
    await s3Client(gw.url).send(new PutObjectCommand({ Bucket: 'local', Key: 'public/readme.txt', Body: 'public' }))
    await s3Client(gw.url).send(new PutObjectCommand({ Bucket: 'local', Key: 'private/secret.txt', Body: 'private' }))
  })
  after(() => gw?.close())

  it('a wrong secret is SignatureDoesNotMatch, an unknown key InvalidAccessKeyId (403), neither echoing the secret', async () => {
    const wrong = s3Client(gw.url, { accessKeyId: FULL.accessKeyId, secretAccessKey: 'not-the-secret-0123456789' })
    assert.deepEqual(await s3Error(wrong.send(new GetObjectCommand({ Bucket: 'local', Key: 'public/readme.txt' }))), { code: 'SignatureDoesNotMatch', status: 403 })
    const unknown = s3Client(gw.url, { accessKeyId: 'nobody-here', secretAccessKey: 'whatever-0123456789abc' })
    assert.deepEqual(await s3Error(unknown.send(new GetObjectCommand({ Bucket: 'local', Key: 'public/readme.txt' }))), { code: 'InvalidAccessKeyId', status: 403 })
    const signed = await sign(gw.url, 'GET', '/local/public/readme.txt', {}, 'UNSIGNED-PAYLOAD', { accessKeyId: FULL.accessKeyId, secretAccessKey: 'not-the-secret-0123456789' })
    const res = await rawRequest(gw.url, 'GET', '/local/public/readme.txt', signed.headers)
    assert.equal(res.status, 403)
    assert.equal(codeOf(res.body), 'SignatureDoesNotMatch')
    assert.ok(res.headers['x-amz-request-id'])
    assert.equal(res.headers['content-type'], 'application/xml')
    assert.ok(!res.body.toString().includes(FULL.secretAccessKey) && !res.body.toString().includes(signed.signature))
  })

  it('a key outside its bucket, prefix or methods is AccessDenied', async () => {
    const reader = s3Client(gw.url, READER)
    const got = await reader.send(new GetObjectCommand({ Bucket: 'local', Key: 'public/readme.txt' }))
    assert.equal(await got.Body!.transformToString(), 'public')
    assert.deepEqual(await s3Error(reader.send(new GetObjectCommand({ Bucket: 'local', Key: 'private/secret.txt' }))), { code: 'AccessDenied', status: 403 })
    assert.deepEqual(await s3Error(reader.send(new PutObjectCommand({ Bucket: 'local', Key: 'public/new.txt', Body: 'x' }))), { code: 'AccessDenied', status: 403 })
    assert.deepEqual(await s3Error(reader.send(new ListObjectsV2Command({ Bucket: 'local' }))), { code: 'AccessDenied', status: 403 })
    const listed = await reader.send(new ListObjectsV2Command({ Bucket: 'local', Prefix: 'public/' }))
    assert.deepEqual(listed.Contents?.map((c) => c.Key), ['public/readme.txt'])
    // HEAD errors carry no body.
    const head = await rawRequest(gw.url, 'HEAD', '/local/private/secret.txt', (await sign(gw.url, 'HEAD', '/local/private/secret.txt', {}, 'UNSIGNED-PAYLOAD', READER)).headers)
    assert.equal(head.status, 403)
    assert.equal(head.body.length, 0)
  })

  it('presigned URLs: expiry over 7 days is refused, the method and path are signed', async () => {
    const url = await getSignedUrl(s3Client(gw.url), new GetObjectCommand({ Bucket: 'local', Key: 'public/readme.txt' }), { expiresIn: 60 })
    const ok = await fetch(url)
    assert.equal(await ok.text(), 'public')
    const longer = url.replace(/X-Amz-Expires=\d+/, 'X-Amz-Expires=604801')
    const refused = await fetch(longer)
    assert.equal(refused.status, 400)
    assert.match(await refused.text(), /<Code>AuthorizationQueryParametersError<\/Code>/)
    const other = await fetch(url.replace('public/readme.txt', 'private/secret.txt'))
    assert.equal(other.status, 403)
    assert.match(await other.text(), /SignatureDoesNotMatch/)
  })

  it('a presigned URL refuses x-amz-* headers it did not sign: a PUT link is not turned into a CopyObject of a key outside it', async () => {
    // The holder of a presigned PUT for uploads/ adds an unsigned x-amz-copy-source: without the
    // check the request is a CopyObject that reads private/secret.txt with the signer's scope.
    // (No checksum in the URL, as boto3, minio-go and SDKs set to WHEN_REQUIRED presign a PUT.)
    const presigner = s3Client(gw.url, FULL, { requestChecksumCalculation: 'WHEN_REQUIRED' })
    const url = await getSignedUrl(presigner, new PutObjectCommand({ Bucket: 'local', Key: 'uploads/mine.txt' }), { expiresIn: 60 })
    assert.ok(!url.includes('x-amz-checksum'), url)
    const copied = await fetch(url, { method: 'PUT', headers: { 'x-amz-copy-source': 'local/private/secret.txt' } })
    const text = await copied.text()
    assert.equal(copied.status, 403, text)
    assert.match(text, /<Code>AccessDenied<\/Code>/)
    assert.match(text, /not signed: x-amz-copy-source/)
    assert.equal((await rawRequest(gw.url, 'GET', '/local/uploads/mine.txt', { Authorization: `Bearer ${BEARER}` })).status, 404)
    // What the URL was signed for still works, and so does a checksum header (it can only refuse a body).
    const body = Buffer.from('uploaded')
    const put = await fetch(url, { method: 'PUT', body, headers: { 'x-amz-checksum-crc32': await crc32Base64(body) } })
    assert.equal(put.status, 200, await put.text())
    assert.equal((await rawRequest(gw.url, 'GET', '/local/uploads/mine.txt', { Authorization: `Bearer ${BEARER}` })).body.toString(), 'uploaded')
  })

  it('unsupported operations are NotImplemented (501), never a success', async () => {
    for (const [method, target] of [
      ['GET', '/local/public/readme.txt?acl'],
      ['GET', '/local/public/readme.txt?tagging'],
      ['GET', '/local?versioning'],
      ['PUT', '/local'],
      ['GET', '/local/public/readme.txt?versionId=3'],
    ] as const) {
      const signed = await sign(gw.url, method, target, {}, 'UNSIGNED-PAYLOAD')
      const res = await rawRequest(gw.url, method, target, signed.headers)
      assert.equal(res.status, 501, `${method} ${target}`)
      assert.equal(codeOf(res.body), 'NotImplemented')
    }
    // Write headers that ask for what the gateway would not do: refused before the body is read.
    const refusedHeaders: Record<string, string>[] = [{ 'x-amz-server-side-encryption': 'AES256' }, { 'x-amz-acl': 'public-read' }, { 'x-amz-tagging': 'a=b' }, { 'x-amz-storage-class': 'GLACIER' }]
    for (const extra of refusedHeaders) {
      const body = 'would not be stored as asked'
      const signed = await sign(gw.url, 'PUT', '/local/public/refused.txt', extra, sha256(body))
      const res = await rawRequest(gw.url, 'PUT', '/local/public/refused.txt', signed.headers, body)
      assert.equal(res.status, 501, JSON.stringify(extra))
      assert.equal(codeOf(res.body), 'NotImplemented')
    }
    assert.equal((await rawRequest(gw.url, 'GET', '/local/public/refused.txt', { Authorization: `Bearer ${BEARER}` })).status, 404)
  })

  it('the configured cors section applies to S3 responses too (a page can read an S3 GET and its errors)', async () => {
    const gw = await startS3Gateway({ raw: { cors: { allowed_origins: ['https://app.example'] } } })
    try {
      for (const key of ['nothing-here', 'also/missing']) {
        const signed = await sign(gw.url, 'GET', `/local/${key}`, {}, 'UNSIGNED-PAYLOAD')
        const res = await rawRequest(gw.url, 'GET', `/local/${key}`, { ...signed.headers, Origin: 'https://app.example' })
        assert.equal(res.status, 404)
        assert.equal(res.headers['access-control-allow-origin'], 'https://app.example')
        const other = await rawRequest(gw.url, 'GET', `/local/${key}`, { ...signed.headers, Origin: 'https://evil.example' })
        assert.equal(other.headers['access-control-allow-origin'], undefined, 'an origin not allowed gets no CORS headers')
      }
    } finally {
      await gw.close()
    }
  })

  it('the object routes\' decorate hook (CORS) runs on S3 object responses too', async () => {
    const hooked = await startS3Gateway({ objectHooks: { decorate: (_incoming, headers, target) => headers.setHeader('X-Test-Hook', `${target?.bucket}:${target?.key}`) } })
    try {
      const signed = await sign(hooked.url, 'GET', '/local/nothing-here', {}, 'UNSIGNED-PAYLOAD')
      const res = await rawRequest(hooked.url, 'GET', '/local/nothing-here', signed.headers)
      assert.equal(res.status, 404)
      assert.equal(res.headers['x-test-hook'], 'local:nothing-here')
    } finally {
      await hooked.close()
    }
  })

  it('bearer and S3 clients share the listener', async () => {
    const bearer = await rawRequest(gw.url, 'GET', '/local/public/readme.txt', { Authorization: `Bearer ${BEARER}` })
    assert.equal(bearer.status, 200)
    assert.equal(bearer.body.toString(), 'public')
    // A bucket-level path is S3's only when signed.
    assert.equal((await rawRequest(gw.url, 'GET', '/local', { Authorization: `Bearer ${BEARER}` })).status, 404)
  })
})

describe('S3 API: bodies that must not be stored', () => {
  let gw: TestGateway
  const key = '/local/guarded.bin'
  const original = Buffer.from('the original object')
  before(async () => {
    gw = await startS3Gateway()
  })
  after(() => gw?.close())

  async function resetAndCheck(refused: Promise<{ status: number; body: Buffer }>, code: string): Promise<void> {
    const res = await refused
    assert.equal(codeOf(res.body), code, res.body.toString())
    const now = await rawRequest(gw.url, 'GET', key, { Authorization: `Bearer ${BEARER}` })
    assert.deepEqual(now.body, original, 'the old object is intact')
  }

  before(async () => {
    await s3Client(gw.url).send(new PutObjectCommand({ Bucket: 'local', Key: 'guarded.bin', Body: original }))
  })

  it('signed chunks are stored; a tampered chunk is SignatureDoesNotMatch and nothing is stored', async () => {
    const chunks = [Buffer.alloc(65536, 1), Buffer.alloc(1000, 2)]
    const decoded = String(65536 + 1000)
    const headers = { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': decoded }
    const good = await sign(gw.url, 'PUT', key, headers, 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD')
    const body = signedChunks(good, chunks)
    const stored = await rawRequest(gw.url, 'PUT', '/local/chunked-ok.bin', { ...(await sign(gw.url, 'PUT', '/local/chunked-ok.bin', headers, 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD')).headers }, body)
    // That body was signed for another key (the seed differs): refused.
    assert.equal(stored.status, 403)
    const res = await rawRequest(gw.url, 'PUT', key, good.headers, body)
    assert.equal(res.status, 200, res.body.toString())
    const now = await rawRequest(gw.url, 'GET', key, { Authorization: `Bearer ${BEARER}` })
    assert.deepEqual(now.body, Buffer.concat(chunks))
    // Back to the original, then a tampered upload.
    await s3Client(gw.url).send(new PutObjectCommand({ Bucket: 'local', Key: 'guarded.bin', Body: original }))
    const again = await sign(gw.url, 'PUT', key, headers, 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD')
    await resetAndCheck(rawRequest(gw.url, 'PUT', key, again.headers, signedChunks(again, chunks, 1)), 'SignatureDoesNotMatch')
  })

  it('a checksum trailer that does not match is BadDigest; a matching one is stored', async () => {
    const data = Buffer.from('checked by crc32 '.repeat(1000))
    const headers = { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length), 'x-amz-trailer': 'x-amz-checksum-crc32' }
    const bad = await sign(gw.url, 'PUT', key, headers, 'STREAMING-UNSIGNED-PAYLOAD-TRAILER')
    await resetAndCheck(rawRequest(gw.url, 'PUT', key, bad.headers, unsignedTrailerBody([data.subarray(0, 5000), data.subarray(5000)], 'AAAAAA==')), 'BadDigest')
    const good = await sign(gw.url, 'PUT', '/local/trailer-ok.bin', headers, 'STREAMING-UNSIGNED-PAYLOAD-TRAILER')
    const res = await rawRequest(gw.url, 'PUT', '/local/trailer-ok.bin', good.headers, unsignedTrailerBody([data], await crc32Base64(data)))
    assert.equal(res.status, 200, res.body.toString())
  })

  it('signed chunks with a signed checksum trailer: stored; a tampered trailer signature is refused', async () => {
    const chunks = [Buffer.alloc(8192, 3), Buffer.alloc(100, 4)]
    const data = Buffer.concat(chunks)
    const headers = { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length), 'x-amz-trailer': 'x-amz-checksum-crc32' }
    const bad = await sign(gw.url, 'PUT', key, headers, 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER')
    await resetAndCheck(rawRequest(gw.url, 'PUT', key, bad.headers, signedChunksWithTrailer(bad, chunks, await crc32Base64(data), true)), 'SignatureDoesNotMatch')
    const badSum = await sign(gw.url, 'PUT', key, headers, 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER')
    await resetAndCheck(rawRequest(gw.url, 'PUT', key, badSum.headers, signedChunksWithTrailer(badSum, chunks, 'AAAAAA==')), 'BadDigest')
    const good = await sign(gw.url, 'PUT', '/local/signed-trailer.bin', headers, 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER')
    const res = await rawRequest(gw.url, 'PUT', '/local/signed-trailer.bin', good.headers, signedChunksWithTrailer(good, chunks, await crc32Base64(data)))
    assert.equal(res.status, 200, res.body.toString())
    assert.deepEqual((await rawRequest(gw.url, 'GET', '/local/signed-trailer.bin', { Authorization: `Bearer ${BEARER}` })).body, data)
  })

  it('a signed payload hash that does not match is XAmzContentSHA256Mismatch', async () => {
    const signed = await sign(gw.url, 'PUT', key, {}, sha256('what was signed'))
    await resetAndCheck(rawRequest(gw.url, 'PUT', key, signed.headers, 'what was sent instead'), 'XAmzContentSHA256Mismatch')
  })

  it('a malformed chunk header is refused and nothing is stored', async () => {
    const headers = { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '4' }
    const signed = await sign(gw.url, 'PUT', key, headers, 'STREAMING-UNSIGNED-PAYLOAD-TRAILER')
    await resetAndCheck(rawRequest(gw.url, 'PUT', key, signed.headers, `${'f'.repeat(5000)}\r\nabcd\r\n0\r\n\r\n`), 'InvalidArgument')
  })
})

/** A gateway (fs store, S3 API on) whose clock runs `offset` ms ahead of the real one. */
async function clockedGateway(auth: Record<string, unknown> = {}) {
  const root = await tempDir()
  const config = validateConfig({ listen: '127.0.0.1:0', auth: { bearer_token: BEARER, ...auth }, stores: { local: { type: 'fs', root } }, s3_api: s3Api(), log: { level: 'silent' } })
  const clock = { offset: 0 }
  const { handle } = createApp({
    config,
    stores: new Map([['local', createFsStore({ id: 'local', root })]]),
    cache: createMemoryCache({ maxBytes: 2 ** 20 }),
    logger: createLogger('silent'),
    now: () => Date.now() + clock.offset,
  })
  const server = http.createServer(handle).listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const close = () => {
    server.closeAllConnections()
    server.close()
  }
  return { url, clock, close }
}

describe('S3 API: clock', () => {
  it('a request signed 20 minutes off is RequestTimeTooSkewed; a presigned URL past its expiry is AccessDenied', async () => {
    const { url, clock, close } = await clockedGateway()
    try {
      const client = s3Client(url)
      await client.send(new PutObjectCommand({ Bucket: 'local', Key: 'a.txt', Body: 'a' }))
      const link = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'local', Key: 'a.txt' }), { expiresIn: 60 })
      clock.offset = 20 * 60 * 1000
      assert.deepEqual(await s3Error(client.send(new GetObjectCommand({ Bucket: 'local', Key: 'a.txt' }))), { code: 'RequestTimeTooSkewed', status: 403 })
      // HEAD errors carry the status only.
      assert.equal((await s3Error(client.send(new HeadObjectCommand({ Bucket: 'local', Key: 'a.txt' })))).status, 403)
      const expired = await fetch(link)
      assert.equal(expired.status, 403)
      assert.match(await expired.text(), /<Code>AccessDenied<\/Code><Message>request has expired/)
      clock.offset = 0
      assert.equal((await fetch(link)).status, 200)
    } finally {
      close()
    }
  })
})

describe('S3 API: auth.max_link_lifetime', () => {
  it('a presigned URL expiring further away than the limit is AccessDenied, checked from now at each request', async () => {
    const { url, clock, close } = await clockedGateway({ max_link_lifetime: '10m' })
    try {
      const client = s3Client(url)
      await client.send(new PutObjectCommand({ Bucket: 'local', Key: 'a.txt', Body: 'a' }))
      const within = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'local', Key: 'a.txt' }), { expiresIn: 600 })
      assert.equal((await fetch(within)).status, 200)
      const hour = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'local', Key: 'a.txt' }), { expiresIn: 3600 })
      const refused = await fetch(hour)
      assert.equal(refused.status, 403)
      assert.match(await refused.text(), /<Code>AccessDenied<\/Code><Message>the presigned URL expires more than 600 s from now \(auth.max_link_lifetime\)/)
      const put = await getSignedUrl(client, new PutObjectCommand({ Bucket: 'local', Key: 'b.txt' }), { expiresIn: 3600 })
      assert.equal((await fetch(put, { method: 'PUT', body: 'b' })).status, 403, 'uploads too')
      // 51 minutes on, the hour-long URL has 9 minutes left: within the limit.
      clock.offset = 51 * 60 * 1000
      assert.equal((await fetch(hour)).status, 200)
      // Signed requests (Authorization header) have no expiry: the limit does not touch them.
      clock.offset = 0
      assert.equal((await client.send(new GetObjectCommand({ Bucket: 'local', Key: 'a.txt' }))).$metadata.httpStatusCode, 200)
    } finally {
      close()
    }
  })
})

describe('S3 API: off', () => {
  it('without s3_api a SigV4-signed request gets the usual 401', async () => {
    const gw = await startGateway()
    try {
      const signed = await sign(gw.url, 'GET', '/local/a.txt', {}, 'UNSIGNED-PAYLOAD')
      const res = await rawRequest(gw.url, 'GET', '/local/a.txt', signed.headers)
      assert.equal(res.status, 401)
    } finally {
      await gw.close()
    }
  })
})
