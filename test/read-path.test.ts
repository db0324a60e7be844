/**
 * The cached read path and write-through PUT, end to end against real emulators (s3rver and
 * Azurite), with a counting proxy between the gateway and the emulator to count upstream calls.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createAzureStore } from '../src/stores/azure.ts'
import { createS3Store } from '../src/stores/s3.ts'
import type { Store } from '../src/stores/types.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { startAzurite, startS3rver } from './helpers/emulators.ts'
import { BEARER, type TestGateway, startGateway } from './helpers/gateway.ts'
import { freePort } from './helpers/ports.ts'

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')
const auth = { Authorization: `Bearer ${BEARER}` }
const KiB = 1024
const MiB = 1024 * KiB

interface Backend {
  name: string
  start(): Promise<{ target: string; makeStore(endpoint: string): Store; close(): Promise<void> }>
}

const backends: Backend[] = [
  {
    name: 's3 (s3rver)',
    async start() {
      const s3 = await startS3rver()
      return {
        target: s3.endpoint,
        makeStore: (endpoint) => createS3Store({ id: 'objs', bucket: s3.bucket, endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey, maxAttempts: 1 }),
        close: s3.close,
      }
    },
  },
  {
    name: 'azure (azurite)',
    async start() {
      const az = await startAzurite()
      return {
        target: /BlobEndpoint=(http:\/\/[^/;]+)/.exec(az.connectionString)![1]!,
        makeStore: (endpoint) =>
          createAzureStore({ id: 'objs', container: az.container, connectionString: az.connectionString.replace(/BlobEndpoint=http:\/\/[^/;]+/, `BlobEndpoint=${endpoint}`), maxAttempts: 1 }),
        close: az.close,
      }
    },
  },
]

async function get(gw: TestGateway, key: string, headers: Record<string, string> = auth) {
  const res = await fetch(`${gw.url}/objs/${key}`, { headers })
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) }
}

async function stats(gw: TestGateway) {
  return (await (await fetch(`${gw.url}/stats`)).json()) as {
    cache: { hits: number; misses: number; inflight_fills: number; tiers: { memory: { entries: number; bytes: number; max_bytes: number } } }
    upstream: { ok: number; errors: number }
  }
}

/** PUT with a chunked body (no Content-Length) from an async generator, via node:http. */
function putChunked(gw: TestGateway, key: string, chunks: AsyncIterable<Buffer> | Iterable<Buffer>, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const url = new URL(`${gw.url}/objs/${key}`)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'PUT', headers: { ...auth, ...headers } }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', (error) => reject(error))
    Readable.from(chunks).pipe(req)
  })
}

/** Random chunks totalling `total` bytes; `digest` collects their sha256 as they are made. */
function* pieces(total: number, digest = createHash('sha256'), size = 256 * KiB): Generator<Buffer> {
  for (let sent = 0; sent < total; sent += size) {
    const chunk = randomBytes(Math.min(size, total - sent))
    digest.update(chunk)
    yield chunk
  }
}

for (const backend of backends) {
  describe(`read path and write-through against ${backend.name}`, () => {
    let emulator: Awaited<ReturnType<Backend['start']>>
    let proxy: CountingProxy
    let store: Store
    let gw: TestGateway
    const getsUpstream = () => proxy.counts.byMethod.GET ?? 0

    before(async () => {
      emulator = await backend.start()
      proxy = await startCountingProxy(emulator.target)
      store = emulator.makeStore(proxy.url)
      gw = await startGateway({
        stores: new Map([['objs', store]]),
        raw: { stores: { objs: { type: 'fs', root: '/nonexistent' } }, cache: { max_memory: '16MiB', max_object_size: '4MiB', max_upload_size: '24MiB', page_size: 0 } },
      })
    })
    after(async () => {
      await gw?.close()
      await proxy?.close()
      await emulator?.close()
    })

    it('read-through: the first GET misses and fetches, the second hits with no upstream request, same bytes', async () => {
      const bytes = randomBytes(300 * KiB)
      await store.put('rt/photo.jpg', Readable.from([bytes]), { contentType: 'image/jpeg' })
      proxy.reset()
      const first = await get(gw, 'rt/photo.jpg')
      assert.equal(first.status, 200)
      assert.equal(first.headers.get('x-cg-status'), 'hit=0')
      assert.equal(first.headers.get('content-type'), 'image/jpeg')
      assert.match(first.headers.get('etag') ?? '', /^"[^"]+"$/)
      assert.ok(first.headers.get('last-modified'))
      assert.equal(getsUpstream(), 1)
      const second = await get(gw, 'rt/photo.jpg')
      assert.equal(second.headers.get('x-cg-status'), 'hit=1')
      assert.equal(second.headers.get('etag'), first.headers.get('etag'))
      assert.equal(getsUpstream(), 1, 'a hit makes no upstream request')
      assert.equal(sha(first.body), sha(bytes))
      assert.equal(sha(second.body), sha(bytes))
    })

    it('a 3 MiB object (cached as the chunks it arrived in) hits whole, by range and by multipart ranges, byte-exact', async () => {
      const bytes = randomBytes(3 * MiB + 5)
      await store.put('rt/chunked.bin', Readable.from([bytes]), { contentType: 'application/octet-stream' })
      assert.equal(sha((await get(gw, 'rt/chunked.bin')).body), sha(bytes))
      proxy.reset()
      const whole = await get(gw, 'rt/chunked.bin')
      assert.equal(whole.headers.get('x-cg-status'), 'hit=1')
      assert.equal(sha(whole.body), sha(bytes))
      const one = await get(gw, 'rt/chunked.bin', { ...auth, Range: 'bytes=70000-2200000' })
      assert.equal(one.status, 206)
      assert.equal(sha(one.body), sha(bytes.subarray(70_000, 2_200_001)))
      const multi = await fetch(`${gw.url}/objs/rt/chunked.bin`, { headers: { ...auth, Range: 'bytes=0-9,1048570-1048580,-7' } })
      assert.equal(multi.status, 206)
      const text = Buffer.from(await multi.arrayBuffer())
      for (const part of [bytes.subarray(0, 10), bytes.subarray(1_048_570, 1_048_581), bytes.subarray(-7)]) assert.ok(text.includes(part))
      assert.equal(getsUpstream(), 0)
    })

    it('singleflight: 50 concurrent cold GETs make exactly one upstream GET, all get the full bytes', async () => {
      const bytes = randomBytes(2 * MiB)
      await store.put('sf/one.bin', Readable.from([bytes]), { contentType: 'application/octet-stream' })
      proxy.reset()
      proxy.configure({ delayMs: 300 })
      try {
        const results = await Promise.all(Array.from({ length: 50 }, () => get(gw, 'sf/one.bin')))
        for (const r of results) {
          assert.equal(r.status, 200)
          assert.equal(sha(r.body), sha(bytes))
        }
        assert.equal(getsUpstream(), 1)
      } finally {
        proxy.configure({})
      }
    })

    it('singleflight: the first client aborts mid-body, the others still get every byte and the entry is cached', async () => {
      const bytes = randomBytes(3 * MiB)
      await store.put('sf/abort.bin', Readable.from([bytes]), { contentType: 'application/octet-stream' })
      proxy.reset()
      proxy.configure({ bytesPerSecond: 6 * MiB })
      try {
        const leader = new AbortController()
        const leaderRes = await fetch(`${gw.url}/objs/sf/abort.bin`, { headers: auth, signal: leader.signal })
        const reader = leaderRes.body!.getReader()
        await reader.read()
        const followers = Array.from({ length: 10 }, () => get(gw, 'sf/abort.bin'))
        await sleep(50)
        leader.abort()
        await reader.cancel().catch(() => {})
        for (const r of await Promise.all(followers)) {
          assert.equal(r.status, 200)
          assert.equal(sha(r.body), sha(bytes))
        }
        assert.equal(getsUpstream(), 1)
      } finally {
        proxy.configure({})
      }
      const again = await get(gw, 'sf/abort.bin')
      assert.equal(again.headers.get('x-cg-status'), 'hit=1')
      assert.equal(getsUpstream(), 1)
    })

    it('singleflight: an upstream failure reaches all 50 waiters as 502, is not cached, and the next request retries', async () => {
      const bytes = randomBytes(64 * KiB)
      await store.put('sf/fail.bin', Readable.from([bytes]), { contentType: 'application/octet-stream' })
      proxy.reset()
      proxy.configure({ delayMs: 300, failStatus: 503 })
      try {
        const results = await Promise.all(Array.from({ length: 50 }, () => get(gw, 'sf/fail.bin')))
        for (const r of results) {
          assert.equal(r.status, 502)
          assert.match(JSON.parse(r.body.toString()).message, /store "objs" failed/)
        }
        assert.equal(getsUpstream(), 1)
      } finally {
        proxy.configure({})
      }
      const retry = await get(gw, 'sf/fail.bin')
      assert.equal(retry.status, 200)
      assert.equal(retry.headers.get('x-cg-status'), 'hit=0')
      assert.equal(sha(retry.body), sha(bytes))
      assert.equal(getsUpstream(), 2)
    })

    it('eviction by bytes: filling past max_memory keeps /stats bytes within the bound', async () => {
      for (let i = 0; i < 24; i++) {
        const bytes = randomBytes(1 * MiB)
        await store.put(`ev/${i}.bin`, Readable.from([bytes]), { contentType: 'application/octet-stream' })
        assert.equal((await get(gw, `ev/${i}.bin`)).status, 200)
        const s = await stats(gw)
        assert.ok(s.cache.tiers.memory.bytes <= 16 * MiB, `${s.cache.tiers.memory.bytes} > bound`)
      }
      const s = await stats(gw)
      assert.ok(s.cache.tiers.memory.bytes > 8 * MiB, 'the cache is really used')
      assert.ok(s.cache.tiers.memory.entries < 24)
    })

    it('with page caching off, objects over max_object_size stream through but are not cached', async () => {
      const bytes = randomBytes(5 * MiB)
      await store.put('big/large.bin', Readable.from([bytes]), { contentType: 'application/octet-stream' })
      proxy.reset()
      for (let i = 0; i < 2; i++) {
        const r = await get(gw, 'big/large.bin')
        assert.equal(r.headers.get('x-cg-status'), 'hit=0')
        assert.equal(sha(r.body), sha(bytes))
      }
      assert.equal(getsUpstream(), 2)
    })

    it('a client that leaves a streamed-through object mid-body stops the upstream read', async () => {
      const bytes = randomBytes(5 * MiB)
      await store.put('big/left.bin', Readable.from([bytes]), { contentType: 'application/octet-stream' })
      proxy.reset()
      proxy.configure({ bytesPerSecond: 2 * MiB })
      try {
        const aborter = new AbortController()
        const res = await fetch(`${gw.url}/objs/big/left.bin`, { headers: auth, signal: aborter.signal })
        assert.equal(res.headers.get('x-cg-status'), 'hit=0')
        await res.body!.getReader().read()
        aborter.abort()
        await sleep(300)
        const afterAbort = proxy.counts.responseBytes
        await sleep(1000)
        // At 2 MiB/s an upstream read that went on would add about 2 MiB in that second.
        assert.ok(proxy.counts.responseBytes - afterAbort < 256 * KiB, `upstream went on: ${afterAbort} then ${proxy.counts.responseBytes} bytes`)
        assert.ok(proxy.counts.responseBytes < bytes.length / 2)
      } finally {
        proxy.configure({})
      }
    })

    it('a client that leaves before the store answers: the streamed-through body is dropped as soon as it arrives', async () => {
      const bytes = randomBytes(5 * MiB)
      await store.put('big/early.bin', Readable.from([bytes]), { contentType: 'application/octet-stream' })
      proxy.reset()
      proxy.configure({ delayMs: 400, bytesPerSecond: 2 * MiB })
      try {
        const aborter = new AbortController()
        const pending = fetch(`${gw.url}/objs/big/early.bin`, { headers: auth, signal: aborter.signal }).catch(() => 'aborted')
        await sleep(100)
        aborter.abort()
        assert.equal(await pending, 'aborted')
        const deadline = Date.now() + 3000
        while (proxy.counts.closedEarly === 0 && Date.now() < deadline) await sleep(20)
        assert.equal(proxy.counts.closedEarly, 1, 'the gateway closed the upstream response instead of holding it open')
        assert.ok(proxy.counts.responseBytes < bytes.length / 2)
      } finally {
        proxy.configure({})
      }
    })

    it('with page caching off, a Range of a large object fetches only that range upstream', async () => {
      const bytes = randomBytes(5 * MiB)
      await store.put('big/ranged.bin', Readable.from([bytes]), { contentType: 'application/octet-stream' })
      proxy.reset()
      const res = await fetch(`${gw.url}/objs/big/ranged.bin`, { headers: { ...auth, Range: 'bytes=-100' } })
      assert.equal(res.status, 206)
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes.subarray(-100))
      assert.ok(proxy.counts.responseBytes <= 100, `${proxy.counts.responseBytes} bytes fetched upstream`)
    })

    it('PUT: a 20 MiB chunked upload streams to the store intact', async () => {
      const digest = createHash('sha256')
      const res = await putChunked(gw, 'up/twenty.bin', pieces(20 * MiB, digest))
      assert.equal(res.status, 200, res.body)
      assert.equal(JSON.parse(res.body).size, 20 * MiB)
      const got = await store.get('up/twenty.bin')
      const chunks: Buffer[] = []
      for await (const c of got!.body) chunks.push(c as Buffer)
      assert.equal(sha(Buffer.concat(chunks)), digest.digest('hex'))
    })

    it('PUT caches a small body, and a later PUT too big to cache still drops the stale copy', async () => {
      const small = Buffer.from('version one')
      assert.equal((await putChunked(gw, 'up/versioned.txt', [small])).status, 200)
      proxy.reset()
      const cached = await get(gw, 'up/versioned.txt')
      assert.equal(cached.headers.get('x-cg-status'), 'hit=1', 'the PUT body was cached')
      assert.equal(cached.body.toString(), 'version one')
      const digest = createHash('sha256')
      assert.equal((await putChunked(gw, 'up/versioned.txt', pieces(5 * MiB, digest))).status, 200)
      const fresh = await get(gw, 'up/versioned.txt')
      assert.equal(fresh.headers.get('x-cg-status'), 'hit=0')
      assert.equal(sha(fresh.body), digest.digest('hex'))
    })

    it('PUT over the upload limit: 413 before streaming (Content-Length) or when a chunked body crosses it; nothing written', async () => {
      const declared = await fetch(`${gw.url}/objs/up/too-big-declared.bin`, { method: 'PUT', headers: { ...auth, 'Content-Length': String(25 * MiB) }, body: Buffer.alloc(25 * MiB), duplex: 'half' } as RequestInit)
      assert.equal(declared.status, 413)
      const chunked = await putChunked(gw, 'up/too-big-chunked.bin', pieces(26 * MiB)).catch((error: Error) => ({ status: 0, body: error.message }))
      // The gateway answers 413 and closes; a client still sending may see the reset instead.
      assert.ok(chunked.status === 413 || chunked.status === 0, `status ${chunked.status}`)
      await sleep(100)
      assert.equal(await store.head('up/too-big-declared.bin'), null)
      assert.equal(await store.head('up/too-big-chunked.bin'), null)
    })

    it('Content-Type: request header, else extension, else magic bytes, else octet-stream; stored and returned', async () => {
      // A complete 1×1 PNG: file-type checks more than the 8-byte signature.
      const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000a49444154789c63000100000500010d0a2db40000000049454e44ae426082', 'hex')
      const cases: [string, Buffer, Record<string, string>, string][] = [
        ['ct/explicit.bin', Buffer.from('x'), { 'Content-Type': 'text/csv; charset=utf-8' }, 'text/csv; charset=utf-8'],
        ['ct/by-ext.json', Buffer.from('{}'), {}, 'application/json'],
        ['ct/magic-no-ext', png, {}, 'image/png'],
        ['ct/unknown-no-ext', Buffer.from('just some bytes'), {}, 'application/octet-stream'],
      ]
      for (const [key, body, headers, expected] of cases) {
        assert.equal((await putChunked(gw, key, [body], headers)).status, 200)
        assert.equal((await store.head(key))?.contentType, expected, `${key} stored`)
        const head = await fetch(`${gw.url}/objs/${key}`, { method: 'HEAD', headers: auth })
        assert.equal(head.headers.get('content-type'), expected, `${key} HEAD`)
      }
      const bad = await putChunked(gw, 'ct/bad.bin', [Buffer.from('x')], { 'Content-Type': 'not a type' })
      assert.equal(bad.status, 400)
    })

    it('HEAD ?prefetch=1 answers from metadata and warms the cache in the background', async () => {
      const bytes = randomBytes(1 * MiB)
      await store.put('pf/warm.bin', Readable.from([bytes]), { contentType: 'application/octet-stream' })
      proxy.reset()
      const head = await fetch(`${gw.url}/objs/pf/warm.bin?prefetch=1`, { method: 'HEAD', headers: auth })
      assert.equal(head.status, 200)
      assert.equal(head.headers.get('content-length'), String(bytes.length))
      for (let i = 0; i < 100 && getsUpstream() === 0; i++) await sleep(20)
      // The background fill has started; wait for it to end (a fixed pause was too short on a busy machine).
      for (let i = 0; i < 250 && (await stats(gw)).cache.inflight_fills > 0; i++) await sleep(20)
      const r = await get(gw, 'pf/warm.bin')
      assert.equal(r.headers.get('x-cg-status'), 'hit=1')
      assert.equal(sha(r.body), sha(bytes))
      assert.equal(getsUpstream(), 1)
      const plain = await fetch(`${gw.url}/objs/pf/missing.bin?prefetch=true`, { method: 'HEAD', headers: auth })
      assert.equal(plain.status, 404)
    })

    it('a missing object is 404 and an unknown bucket is 404', async () => {
      assert.equal((await get(gw, 'nope/none.bin')).status, 404)
      assert.equal((await fetch(`${gw.url}/nobucket/x`, { headers: auth })).status, 404)
      assert.equal((await fetch(`${gw.url}/nobucket/x`, { method: 'HEAD', headers: auth })).status, 404)
    })
  })
}

describe('upstream down', () => {
  it('→ 502 with a clear body, for GET, HEAD and PUT; no cache entry written', async () => {
    const port = await freePort()
    const store = createS3Store({ id: 'objs', bucket: 'down-bucket', endpoint: `http://127.0.0.1:${port}`, allowHttp: true, accessKey: 'a', secretKey: 'b', maxAttempts: 1 })
    const gw = await startGateway({ stores: new Map([['objs', store]]), raw: { stores: { objs: { type: 'fs', root: '/nonexistent' } } } })
    try {
      const r = await get(gw, 'a/b.txt')
      assert.equal(r.status, 502)
      assert.deepEqual(JSON.parse(r.body.toString()), { error: 'upstream error', message: 'store "objs" failed: cannot connect' })
      assert.equal((await fetch(`${gw.url}/objs/a/b.txt`, { method: 'HEAD', headers: auth })).status, 502)
      assert.equal((await fetch(`${gw.url}/objs/a/b.txt`, { method: 'PUT', headers: auth, body: 'x' })).status, 502)
      const s = await stats(gw)
      assert.equal(s.cache.tiers.memory.entries, 0)
      assert.ok(s.upstream.errors >= 3)
      const metrics = await (await fetch(`${gw.url}/metrics`)).text()
      assert.match(metrics, /cachegate_upstream_errors_total\{store="objs",kind="connect"\} [3-9]/)
    } finally {
      await gw.close()
    }
  })
})
