/**
 * Upstream faults the emulators cannot produce: a store that never answers, one that stops
 * mid-body, and two PUTs of one key racing. The first two use a fake S3 endpoint on
 * loopback; the race uses a scripted store behind the object service.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { PassThrough, Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { openDiskCache } from '../src/cache/disk/index.ts'
import { createHybridCache } from '../src/cache/hybrid.ts'
import { createMemoryCache } from '../src/cache/memory.ts'
import { cacheKey } from '../src/cache/keys.ts'
import { createLogger } from '../src/log.ts'
import { Telemetry } from '../src/metrics.ts'
import { createObjectService } from '../src/objects/index.ts'
import { createAzureStore } from '../src/stores/azure.ts'
import { createS3Store } from '../src/stores/s3.ts'
import type { ObjectMeta, Store } from '../src/stores/types.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { azuriteConnectionString, startAzurite, startS3rver } from './helpers/emulators.ts'
import { BEARER, type TestGateway, startGateway } from './helpers/gateway.ts'
import { freePort } from './helpers/ports.ts'

const auth = { Authorization: `Bearer ${BEARER}` }

describe('a store that stalls', () => {
  let fake: http.Server
  let gw: TestGateway
  /** Objects over 40 bytes are read in 40-byte pages. */
  let paged: TestGateway
  const sockets = new Set<import('node:net').Socket>()
  /** Ranged GETs the fake store answered, per kind of page fault. */
  const rangedGets = new Map<string, number>()
  /** When the fake store saw each `silent/*` request's connection close (ms, performance.now). */
  const silentClosed: number[] = []
  /** Objects over 40 bytes, read without a Range, are streamed through uncached. */
  let through: TestGateway

  before(async () => {
    // `silent/*` never answers; `stall/*` sends headers and 10 of 100 bytes, then nothing.
    // Ranged GETs (objects of 100 bytes, read in 40-byte pages by `paged`): `stallpage/*`
    // stalls the same way, `shortpage/*` sends a well-framed body 10 bytes short of the
    // range, `longpage/*` one 10 bytes long, `shiftedpage/*` the range 10 bytes later.
    fake = http.createServer((req, res) => {
      if (req.url?.includes('/silent/')) {
        req.socket.once('close', () => silentClosed.push(performance.now()))
        return
      }
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
      const page = /\/(stall|short|long|shifted)page\//.exec(req.url ?? '')?.[1]
      if (page && req.method === 'GET' && range) {
        rangedGets.set(page, (rangedGets.get(page) ?? 0) + 1)
        let [start, end] = [Number(range[1]), Number(range[2])]
        if (page === 'shifted') [start, end] = [start + 10, end + 10]
        const length = end - start + 1 + (page === 'short' ? -10 : page === 'long' ? 10 : 0)
        const headers = { 'Content-Range': `bytes ${start}-${end}/100`, ETag: '"e1"', 'Content-Type': 'application/octet-stream' }
        if (page === 'stall') {
          res.writeHead(206, { ...headers, 'Content-Length': String(length) })
          res.write(Buffer.alloc(10, 1))
          return
        }
        res.writeHead(206, { ...headers, 'Content-Length': String(length) })
        res.end(Buffer.alloc(length, 2))
        return
      }
      // A typed object is sent as its bytes arrive; an untyped one waits for its magic bytes.
      const type = req.url?.includes('/untyped/') ? 'application/octet-stream' : 'video/mp4'
      res.writeHead(200, { 'Content-Length': '100', ETag: '"e1"', 'Content-Type': type, 'Last-Modified': new Date().toUTCString() })
      if (req.method === 'HEAD') return res.end()
      res.write(Buffer.alloc(10, 1))
    })
    fake.on('connection', (socket) => sockets.add(socket))
    fake.listen(0, '127.0.0.1')
    await new Promise((resolve) => fake.once('listening', resolve))
    const endpoint = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`
    const store = createS3Store({ id: 'objs', bucket: 'stall-bucket', endpoint, allowHttp: true, accessKey: 'a', secretKey: 'b', maxAttempts: 1 })
    gw = await startGateway({ stores: new Map([['objs', store]]), raw: { stores: { objs: { type: 'fs', root: '/nonexistent' } }, upstream: { timeout_seconds: 0.5 } } })
    through = await startGateway({
      stores: new Map([['objs', store]]),
      raw: { stores: { objs: { type: 'fs', root: '/nonexistent' } }, upstream: { timeout_seconds: 0.5 }, cache: { max_memory: '1MiB', max_object_size: '40B' } },
    })
    paged = await startGateway({
      stores: new Map([['objs', store]]),
      raw: { stores: { objs: { type: 'fs', root: '/nonexistent' } }, upstream: { timeout_seconds: 0.5 }, cache: { max_memory: '1MiB', max_object_size: '40B', page_size: '40B' } },
    })
  })
  after(async () => {
    await gw.close()
    await paged.close()
    await through.close()
    for (const socket of sockets) socket.destroy()
    fake.close()
  })

  it('a store that never answers → 504 after the upstream timeout, and the key is not wedged', async () => {
    for (let i = 0; i < 2; i++) {
      const started = performance.now()
      const res = await fetch(`${gw.url}/objs/silent/a.bin`, { headers: auth })
      assert.equal(res.status, 504)
      assert.match((await res.json()).message, /timed out/)
      assert.ok(performance.now() - started < 3000)
    }
  })

  it('a store that never answers: the deadline aborts the store request, not only the response', async () => {
    const closedBefore = silentClosed.length
    const res = await fetch(`${gw.url}/objs/silent/abort.bin`, { headers: auth })
    assert.equal(res.status, 504)
    const answered = performance.now()
    await res.arrayBuffer()
    // Before: the S3 client kept the socket until its own 60 s request timeout.
    while (silentClosed.length === closedBefore && performance.now() - answered < 3000) await sleep(20)
    assert.equal(silentClosed.length, closedBefore + 1, 'the upstream connection is still open 3 s after the 504')
    assert.ok(silentClosed.at(-1)! - answered < 500, `closed ${Math.round(silentClosed.at(-1)! - answered)} ms after the 504`)
  })

  it('an object streamed through uncached whose store goes silent mid-body is cut at the upstream timeout', async () => {
    // 100 bytes > max_object_size 40: the first plain GET is a pass-through. Before: 63 s (S3
    // socket timeout); the signal ends the test at 10 s either way.
    const started = performance.now()
    const res = await fetch(`${through.url}/objs/stall/through.bin`, { headers: auth, signal: AbortSignal.timeout(10_000) })
    assert.equal(res.status, 200)
    const outcome = await res.arrayBuffer().then(
      () => 'complete',
      (error: unknown) => ((error as Error).name === 'TimeoutError' ? 'still hanging after 10 s' : 'cut'),
    )
    const elapsed = performance.now() - started
    assert.equal(outcome, 'cut')
    assert.ok(elapsed >= 400 && elapsed < 2000, `cut after ${Math.round(elapsed)} ms; the timeout is 500 ms`)
  })

  it('a body that stops mid-way fails every reader, is not cached, and frees the key', async () => {
    const read = async () => {
      const res = await fetch(`${gw.url}/objs/stall/b.bin`, { headers: auth })
      assert.equal(res.status, 200)
      return res.arrayBuffer().then(
        () => 'complete',
        () => 'aborted',
      )
    }
    const outcomes = await Promise.all([read(), read(), read()])
    assert.deepEqual(outcomes, ['aborted', 'aborted', 'aborted'])
    await sleep(50)
    const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { cache: { inflight_fills: number; tiers: { memory: { entries: number } } } }
    assert.equal(stats.cache.inflight_fills, 0)
    assert.equal(stats.cache.tiers.memory.entries, 0)
    assert.equal(await read(), 'aborted', 'a later reader starts a new fill instead of joining a dead one')
  })

  it('an untyped body that stops before its magic bytes arrive: every reader gets 504 (nothing was sent), the key is freed', async () => {
    const statuses = await Promise.all([0, 1, 2].map(async () => (await fetch(`${gw.url}/objs/untyped/b`, { headers: auth })).status))
    assert.deepEqual(statuses, [504, 504, 504])
    await sleep(50)
    const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { cache: { inflight_fills: number } }
    assert.equal(stats.cache.inflight_fills, 0)
  })

  it('a page body that stops mid-way ends the responses streaming it, is not cached, and frees the page', async () => {
    const read = async () => {
      const res = await fetch(`${paged.url}/objs/stallpage/c.bin`, { headers: { ...auth, Range: 'bytes=0-29' } })
      assert.equal(res.status, 206)
      return res.arrayBuffer().then(
        () => 'complete',
        () => 'aborted',
      )
    }
    assert.deepEqual(await Promise.all([read(), read()]), ['aborted', 'aborted'])
    await sleep(50)
    const stats = (await (await fetch(`${paged.url}/stats`)).json()) as { cache: { inflight_fills: number; tiers: { memory: { entries: number } } } }
    assert.equal(stats.cache.inflight_fills, 0)
    // Only the object's small metadata record is cached, never a partial page.
    assert.equal(stats.cache.tiers.memory.entries, 1)
    const before = rangedGets.get('stall') ?? 0
    assert.equal(await read(), 'aborted')
    assert.equal(rangedGets.get('stall'), before + 1, 'a later reader fetches the page again instead of joining a dead one')
    const metrics = await (await fetch(`${paged.url}/metrics`)).text()
    assert.match(metrics, /cachegate_upstream_errors_total\{store="objs",kind="timeout"\} [1-9]/)
  })

  for (const [kind, what] of [
    ['short', 'ends 10 bytes short of its range'],
    ['long', 'runs 10 bytes past its range'],
  ] as const) {
    it(`a page body that ${what} ends the response early and is never cached`, async () => {
      for (let i = 1; i <= 2; i++) {
        // The failure can come before the headers are flushed (the connection is reset) or
        // after (the body is cut): never a complete response.
        const outcome = await fetch(`${paged.url}/objs/${kind}page/d.bin`, { headers: { ...auth, Range: 'bytes=0-39' } }).then(
          (res) => res.arrayBuffer().then(() => `complete ${res.status}`, () => 'aborted'),
          () => 'aborted',
        )
        assert.equal(outcome, 'aborted')
        assert.equal(rangedGets.get(kind), i, 'not cached: the next reader fetches the page again')
      }
    })
  }

  it('a page answered with another range than asked is refused before any byte goes out (502)', async () => {
    const res = await fetch(`${paged.url}/objs/shiftedpage/e.bin`, { headers: { ...auth, Range: 'bytes=0-39' } })
    assert.equal(res.status, 502)
  })
})

describe('a store that refuses connections or fails with 503', { timeout: 60_000 }, () => {
  /** Per backend: a store maker for an endpoint, the emulator's own endpoint, and a proxy in front of it. */
  const backends: { name: string; make(endpoint: string, maxAttempts?: number): Store; proxy: CountingProxy; close(): Promise<void> }[] = []

  before(async () => {
    const [s3, azurite] = await Promise.all([startS3rver(), startAzurite()])
    const azurePort = Number(/BlobEndpoint=http:\/\/127\.0\.0\.1:(\d+)/.exec(azurite.connectionString)?.[1])
    const s3Proxy = await startCountingProxy(s3.endpoint)
    const azureProxy = await startCountingProxy(`http://127.0.0.1:${azurePort}`)
    backends.push(
      {
        name: 's3',
        make: (endpoint, maxAttempts) => createS3Store({ id: 'objs', bucket: s3.bucket, endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey, maxAttempts }),
        proxy: s3Proxy,
        close: async () => (await s3Proxy.close(), await s3.close()),
      },
      {
        name: 'azure',
        make: (endpoint, maxAttempts) =>
          createAzureStore({ id: 'objs', container: azurite.container, connectionString: azurite.connectionString.replace(`http://127.0.0.1:${azurePort}`, endpoint), maxAttempts }),
        proxy: azureProxy,
        close: async () => (await azureProxy.close(), await azurite.close()),
      },
    )
  })
  after(async () => {
    await Promise.all(backends.map((backend) => backend.close()))
  })

  /** One GET through a gateway over `store` (default retry settings unless the store says otherwise). */
  async function timedGet(store: Store, timeoutSeconds: number, key: string): Promise<{ status: number; ms: number }> {
    const gw = await startGateway({ stores: new Map([['objs', store]]), raw: { stores: { objs: { type: 'fs', root: '/nonexistent' } }, upstream: { timeout_seconds: timeoutSeconds } } })
    try {
      const started = performance.now()
      const res = await fetch(`${gw.url}/objs/${key}`, { headers: auth })
      await res.arrayBuffer()
      return { status: res.status, ms: performance.now() - started }
    } finally {
      await gw.close()
    }
  }

  it('a refused connection is a 502 within a second, on S3 and Azure (default retries)', async () => {
    // Before: Azure retried a refused connection 4 times, 4 s and 12 s apart: 504 at the deadline.
    const port = await freePort()
    for (const backend of backends) {
      const { status, ms } = await timedGet(backend.make(`http://127.0.0.1:${port}`), 10, 'refused.bin')
      assert.equal(status, 502, backend.name)
      assert.ok(ms < 1000, `${backend.name}: answered after ${Math.round(ms)} ms`)
    }
  })

  it('a store answering 503 is a 502 within a second, on S3 and Azure (default retries)', async () => {
    for (const backend of backends) {
      backend.proxy.configure({ failStatus: 503 })
      backend.proxy.reset()
      try {
        const { status, ms } = await timedGet(backend.make(backend.proxy.url), 10, 'unavailable.bin')
        assert.equal(status, 502, backend.name)
        assert.ok(ms < 1000, `${backend.name}: answered after ${Math.round(ms)} ms`)
        assert.ok(backend.proxy.counts.requests >= 2, `${backend.name}: retried (${backend.proxy.counts.requests} requests)`)
      } finally {
        backend.proxy.configure({})
      }
    }
  })

  it('retries stop at the deadline: no upstream request arrives after the client got its answer', async () => {
    // 503s that take 400 ms each, and more attempts than fit in the 1 s deadline.
    await Promise.all(
      backends.map(async (backend) => {
        backend.proxy.configure({ failStatus: 503, delayMs: 400 })
        backend.proxy.reset()
        try {
          const { status, ms } = await timedGet(backend.make(backend.proxy.url, 8), 1, 'retried.bin')
          assert.ok(status === 504 || status === 502, `${backend.name}: ${status}`)
          assert.ok(ms < 1600, `${backend.name}: answered after ${Math.round(ms)} ms`)
          const atAnswer = backend.proxy.counts.requests
          // Before: Azure's next try came 4 s later, S3's within a second.
          await sleep(4500)
          assert.equal(backend.proxy.counts.requests, atAnswer, `${backend.name}: requests arrived after the answer`)
        } finally {
          backend.proxy.configure({})
        }
      }),
    )
  })
})

describe('two PUTs of one key racing', () => {
  const caches = {
    memory: async () => createMemoryCache({ maxBytes: 1 << 20 }),
    'memory + disk': async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-race-'))
      after(() => rm(dir, { recursive: true, force: true, maxRetries: 5 }))
      return createHybridCache({ memory: createMemoryCache({ maxBytes: 1 << 20 }), disk: await openDiskCache({ path: dir, maxBytes: 1 << 22 }) })
    },
  }
  for (const [tier, makeCache] of Object.entries(caches)) {
    for (const first of ['AAAA', 'BBBB']) {
      const kept = first === 'AAAA' ? 'BBBB' : 'AAAA'
      it(`${tier}, ${first} commits first: neither caches its body; reads fetch what the store really kept`, async () => {
        let stored: { meta: ObjectMeta; bytes: Buffer } | undefined
        const gates = new Map<string, () => void>()
        /** A store whose put commits only when the test releases that body's gate. */
        const store: Store = {
          type: 'fs',
          id: 's',
          head: async () => stored?.meta ?? null,
          get: async () => (stored ? { meta: stored.meta, body: Readable.from([stored.bytes]) } : null),
          async put(_key, body, opts) {
            const chunks: Buffer[] = []
            for await (const c of body) chunks.push(c as Buffer)
            const bytes = Buffer.concat(chunks)
            await new Promise<void>((resolve) => gates.set(bytes.toString(), resolve))
            const meta = { size: bytes.length, contentType: opts.contentType, etag: `"${bytes.toString()}"` }
            stored = { meta, bytes }
            return meta
          },
        }
        const cache = await makeCache()
        const objects = createObjectService({ cache, maxObjectSize: 1 << 16, maxUploadSize: 1 << 20, telemetry: new Telemetry(), logger: createLogger('silent') })
        const a = objects.write(store, 'k', Readable.from([Buffer.from('AAAA')]), { contentType: 'text/plain' })
        const b = objects.write(store, 'k', Readable.from([Buffer.from('BBBB')]), { contentType: 'text/plain' })
        while (gates.size < 2) await sleep(5)
        const writes = { AAAA: a, BBBB: b }
        gates.get(first)!() // one commits...
        await writes[first as keyof typeof writes]
        gates.get(kept)!() // ...then the other: the store keeps the last
        await writes[kept as keyof typeof writes]
        await (cache as { settled?: () => Promise<void> }).settled?.()
        assert.equal(await cache.get(cacheKey('s', 'k')), undefined, 'nothing cached by the overlapping PUTs, in any tier')
        const read = await objects.open(store, 'k', false)
        assert.equal(read!.result, 'miss')
        const body = await read!.read()
        const chunks: Buffer[] = []
        for await (const c of body as Readable) chunks.push(c as Buffer)
        assert.equal(Buffer.concat(chunks).toString(), kept)
        await cache.close?.()
      })
    }
  }
})

describe('a PUT while a page of the old version is still filling', () => {
  it('a reader of the new version never joins the old page fill: each reader gets its own version', async () => {
    let stored = { meta: { size: 32, contentType: 'application/octet-stream', etag: '"v1"' } as ObjectMeta, bytes: Buffer.alloc(32, 'A') }
    /** Bodies of version 1 trickle: 4 bytes, then the rest only when the test says so. */
    const held: { body: PassThrough; rest: Buffer }[] = []
    const store: Store = {
      type: 'fs',
      id: 's',
      head: async () => stored.meta,
      async get(_key, opts) {
        const range = opts?.range ?? { start: 0, end: stored.meta.size - 1 }
        const part = stored.bytes.subarray(range.start, range.end + 1)
        if (stored.meta.etag !== '"v1"') return { meta: stored.meta, body: Readable.from([part]), range: opts?.range }
        const body = new PassThrough()
        body.write(part.subarray(0, 4))
        held.push({ body, rest: part.subarray(4) })
        return { meta: stored.meta, body, range: opts?.range }
      },
      async put(_key, body, opts) {
        const chunks: Buffer[] = []
        for await (const c of body) chunks.push(c as Buffer)
        stored = { meta: { size: 32, contentType: opts.contentType, etag: '"v2"' }, bytes: Buffer.concat(chunks) }
        return stored.meta
      },
    }
    const objects = createObjectService({ cache: createMemoryCache({ maxBytes: 1 << 20 }), maxObjectSize: 8, pageSize: 16, readAhead: 0, maxUploadSize: 1 << 20, telemetry: new Telemetry(), logger: createLogger('silent') })
    const text = async (body: Readable) => Buffer.concat(await body.toArray()).toString()

    const oldReader = await objects.open(store, 'k', true)
    const oldBody = (await oldReader!.read({ start: 0, end: 15 })) as Readable // page 0 of v1 is filling
    await objects.write(store, 'k', Readable.from([Buffer.alloc(32, 'B')]), { contentType: 'application/octet-stream' })
    const newReader = await objects.open(store, 'k', true)
    assert.equal(newReader!.meta.etag, '"v2"')
    const newBody = (await newReader!.read({ start: 0, end: 15 })) as Readable
    for (const { body, rest } of held) body.end(rest)
    assert.equal(await text(oldBody), 'A'.repeat(16), 'the old reader finishes the version it started')
    assert.equal(await text(newBody), 'B'.repeat(16), 'the new reader gets the new version')
    // The old fill finishing later must not make a new-version read serve old bytes either.
    const again = await objects.open(store, 'k', true)
    assert.equal(await text((await again!.read({ start: 0, end: 15 })) as Readable), 'B'.repeat(16))
  })
})

describe('an fs store that fails', () => {
  it('logs the key, never the absolute path on disk', async () => {
    const lines: string[] = []
    const root = await mkdtemp(path.join(tmpdir(), 'cachegate-fs-fault-'))
    const gw = await startGateway({ root, logger: createLogger('debug', (line) => lines.push(line)) })
    try {
      // Tests run as root, so permissions cannot make a write fail: a file where the store
      // keeps its temp directory does (ENOTDIR/EEXIST on every PUT).
      await mkdir(path.join(root, '.cachegate-meta'), { recursive: true })
      await writeFile(path.join(root, '.cachegate-meta', 'tmp'), 'not a directory')
      const res = await fetch(`${gw.url}/local/reports/q3.txt`, { method: 'PUT', headers: auth, body: 'data' })
      assert.equal(res.status, 502)
      assert.ok(!(await res.text()).includes(root))
      const failed = lines.filter((line) => line.includes('"request failed"'))
      assert.equal(failed.length, 1, lines.join(''))
      assert.ok(!failed[0]!.includes(root), `the disk path leaked: ${failed[0]}`)
      assert.ok(failed[0]!.includes('reports/q3.txt'), `the key is missing: ${failed[0]}`)
      assert.match(failed[0]!, /"code":"(ENOTDIR|EEXIST)"/)
      assert.ok(!lines.join('').includes(root), 'no log line names the root')
    } finally {
      await gw.close()
      await rm(root, { recursive: true, force: true })
    }
  })
})
