/**
 * `log.access`: one JSON line per request with the documented fields, and no secret (no
 * query, no `sig`, no token) in any of them; `log.access: false` installs nothing.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, it } from 'node:test'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { generateKeyPair } from '../src/auth/keys.ts'
import { presign } from '../src/auth/presign.ts'
import { validateConfig } from '../src/config/load.ts'
import type { AccessRecord } from '../src/http/access-log.ts'
import { createLogger } from '../src/log.ts'
import { startServer } from '../src/server.ts'
import { BEARER, rawRequest, tempDir } from './helpers/gateway.ts'
import { FULL, READER, s3Api, s3Client } from './helpers/s3-gateway.ts'
import { sign } from './helpers/s3-sign.ts'

async function gatewayWithAccessLog(access: boolean, extra: Record<string, unknown> = {}) {
  const keys = generateKeyPair()
  const root = await tempDir()
  await writeFile(path.join(root, 'x.txt'), 'hello access log')
  const config = validateConfig({
    listen: '127.0.0.1:0',
    auth: { ...keys, bearer_token: BEARER },
    stores: { local: { type: 'fs', root } },
    log: { level: 'info', access },
    ...extra,
  })
  let written = ''
  const other: string[] = []
  const running = await startServer(config, { logger: createLogger('info', (line) => void other.push(line)), accessLogWrite: (chunk) => void (written += chunk) })
  return { ...running, keys, lines: () => written.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AccessRecord), raw: () => written }
}

describe('access log', () => {
  it('a GET (miss, hit, presigned), a PUT and refused requests each get one line with the fields and no secret', async () => {
    const gw = await gatewayWithAccessLog(true)
    const bearer = { Authorization: `Bearer ${BEARER}` }
    const signed = new URL(presign({ baseUrl: gw.url, bucket: 'local', path: 'x.txt', privateKey: gw.keys.private_key }))
    const sig = signed.searchParams.get('sig')!
    try {
      assert.equal((await rawRequest(gw.url, 'GET', '/local/x.txt?foo=bar', bearer)).status, 200)
      assert.equal((await rawRequest(gw.url, 'GET', '/local/x.txt', bearer)).status, 200)
      assert.equal((await rawRequest(gw.url, 'GET', `${signed.pathname}${signed.search}`)).status, 200)
      assert.equal((await rawRequest(gw.url, 'PUT', '/local/new.txt', { ...bearer, 'Content-Type': 'text/plain' }, 'uploaded')).status, 200)
      assert.equal((await rawRequest(gw.url, 'GET', '/local/x.txt', { Authorization: 'Bearer wrong-token-0123456789abc' })).status, 401)
      assert.equal((await rawRequest(gw.url, 'GET', `/local/x.txt?sig=${sig.slice(0, -4)}AAAA`)).status, 401)
      assert.equal((await rawRequest(gw.url, 'GET', '/health')).status, 200)
    } finally {
      await gw.close()
    }
    const lines = gw.lines()
    assert.equal(lines.length, 7, gw.raw())
    const [miss, hit, presigned, put, badToken, badSig, health] = lines as [AccessRecord, AccessRecord, AccessRecord, AccessRecord, AccessRecord, AccessRecord, AccessRecord]
    for (const line of lines) {
      assert.equal(line.msg, 'access')
      assert.equal(line.level, 'info')
      assert.ok(!Number.isNaN(Date.parse(line.time)))
      assert.equal(line.client, '127.0.0.1')
      assert.ok(line.duration_ms >= 0)
      assert.ok(line.bytes > 0, 'headers at least')
      assert.equal(line.aborted, undefined)
      assert.equal(line.token_id, undefined, 'no principal has a token id yet')
    }
    assert.deepEqual({ ...miss, time: 0, duration_ms: 0, bytes: 0 }, { time: 0, level: 'info', msg: 'access', method: 'GET', bucket: 'local', path: '/local/x.txt', status: 200, bytes: 0, duration_ms: 0, cache: 'hit=0', auth: 'bearer', client: '127.0.0.1' })
    assert.ok(miss.bytes > 'hello access log'.length, 'body and headers counted')
    assert.equal(hit.cache, 'hit=1')
    assert.equal(presigned.auth, 'presigned')
    assert.equal(presigned.path, '/local/x.txt')
    assert.deepEqual([put.method, put.status, put.auth, put.path, put.cache], ['PUT', 200, 'bearer', '/local/new.txt', undefined])
    assert.deepEqual([badToken.status, badToken.auth, badToken.bucket], [401, 'none', 'local'])
    assert.deepEqual([badSig.status, badSig.auth, badSig.path], [401, 'none', '/local/x.txt'])
    assert.deepEqual([health.path, health.bucket, health.auth], ['/health', undefined, 'none'])
    const all = gw.raw()
    for (const secret of [BEARER, 'wrong-token', sig, sig.slice(0, 20), 'sig=', 'foo=bar', '?']) assert.ok(!all.includes(secret), `no ${secret} in the access log`)
  })

  it('bytes is exactly what the connection carried for the response (a miss answered later, a hit answered at once, a HEAD)', async () => {
    const gw = await gatewayWithAccessLog(true)
    /** Every byte the server sent for one request on a fresh connection. */
    const received = async (method: string) => {
      const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
      await once(socket, 'connect')
      socket.write(`${method} /local/x.txt HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${BEARER}\r\nConnection: close\r\n\r\n`)
      let bytes = 0
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length))
      await once(socket, 'close')
      return bytes
    }
    let sent: number[]
    try {
      sent = [await received('GET'), await received('GET'), await received('HEAD')]
    } finally {
      await gw.close()
    }
    const lines = gw.lines()
    assert.deepEqual(lines.map((l) => l.cache), ['hit=0', 'hit=1', 'hit=1'], 'a miss, then hits')
    assert.deepEqual(lines.map((l) => l.bytes), sent)
  })

  it('the client address comes from trust_proxy; an upload cut mid-body is logged as aborted', async () => {
    const gw = await gatewayWithAccessLog(true, { trust_proxy: ['127.0.0.1'] })
    try {
      assert.equal((await rawRequest(gw.url, 'GET', '/local/x.txt', { Authorization: `Bearer ${BEARER}`, 'X-Forwarded-For': '203.0.113.7' })).status, 200)
      const { port } = new URL(gw.url)
      const socket = net.connect(Number(port), '127.0.0.1')
      socket.on('error', () => {})
      await once(socket, 'connect')
      socket.write(`PUT /local/cut.txt HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${BEARER}\r\nContent-Length: 100\r\n\r\nhello`)
      // The line is written when the server side of the request closes.
      while (gw.lines().length < 2) {
        if (!socket.destroyed) socket.destroy()
        await new Promise((resolve) => setImmediate(resolve))
      }
    } finally {
      await gw.close()
    }
    const [forwarded, cut] = gw.lines()
    assert.equal(forwarded?.client, '203.0.113.7')
    assert.deepEqual([cut?.method, cut?.path, cut?.aborted, cut?.client], ['PUT', '/local/cut.txt', true, '127.0.0.1'])
  })

  it('S3 requests name the access key whose signature verified (auth "s3"); a bad signature is auth "none"; no signature or secret is logged', async () => {
    const gw = await gatewayWithAccessLog(true, { s3_api: s3Api() })
    const UNSIGNED = 'UNSIGNED-PAYLOAD'
    const s3 = async (target: string, credentials = FULL) => (await rawRequest(gw.url, 'GET', target, (await sign(gw.url, 'GET', target, {}, UNSIGNED, credentials)).headers)).status
    const presigned = new URL(await getSignedUrl(s3Client(gw.url), new GetObjectCommand({ Bucket: 'local', Key: 'x.txt' }), { expiresIn: 60 }))
    try {
      assert.equal(await s3('/local/x.txt'), 200)
      assert.equal(await s3('/local/x.txt'), 200)
      assert.equal(await s3('/local?list-type=2'), 200)
      assert.equal(await s3('/local/x.txt', READER), 403, 'outside the reader key\'s prefix')
      assert.equal(await s3('/local/x.txt', { ...FULL, secretAccessKey: 'not-the-secret-0123456789ab' }), 403)
      assert.equal((await rawRequest(gw.url, 'GET', `${presigned.pathname}${presigned.search}`)).status, 200)
    } finally {
      await gw.close()
    }
    const lines = gw.lines()
    assert.equal(lines.length, 6, gw.raw())
    const picked = lines.map((l) => [l.path, l.status, l.cache, l.auth, l.access_key_id])
    assert.deepEqual(picked, [
      ['/local/x.txt', 200, 'hit=0', 's3', FULL.accessKeyId],
      ['/local/x.txt', 200, 'hit=1', 's3', FULL.accessKeyId],
      ['/local', 200, undefined, 's3', FULL.accessKeyId],
      ['/local/x.txt', 403, undefined, 's3', READER.accessKeyId],
      ['/local/x.txt', 403, undefined, 'none', undefined],
      ['/local/x.txt', 200, 'hit=1', 's3', FULL.accessKeyId],
    ])
    for (const line of lines) assert.equal(line.token_id, undefined)
    const all = gw.raw()
    const signature = presigned.searchParams.get('X-Amz-Signature')!
    for (const secret of [FULL.secretAccessKey, READER.secretAccessKey, 'not-the-secret', signature, 'X-Amz-', 'Signature', 'list-type', '?']) assert.ok(!all.includes(secret), `no ${secret} in the access log`)
  })

  it('log.access: false writes nothing', async () => {
    const gw = await gatewayWithAccessLog(false)
    try {
      assert.equal((await rawRequest(gw.url, 'GET', '/local/x.txt', { Authorization: `Bearer ${BEARER}` })).status, 200)
      assert.equal((await rawRequest(gw.url, 'GET', '/local/x.txt')).status, 401)
    } finally {
      await gw.close()
    }
    assert.equal(gw.raw(), '')
  })
})
