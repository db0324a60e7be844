/**
 * One conformance suite for every Store implementation (as unstorage's `testDriver`):
 * fs on a temp dir, s3 on s3rver, azure on Azurite. All loopback, no network.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { PreconditionFailedError, UpstreamError } from '../src/errors.ts'
import { createAzureStore } from '../src/stores/azure.ts'
import { createFsStore } from '../src/stores/fs.ts'
import { Telemetry } from '../src/metrics.ts'
import { decorateStore } from '../src/stores/registry.ts'
import { createS3Store } from '../src/stores/s3.ts'
import type { Store } from '../src/stores/types.ts'
import { startCountingProxy } from './helpers/counting-proxy.ts'
import { type AdminTraits, describeStoreAdmin } from './store-admin-cases.ts'
import { azuriteConnectionString, startAzurite, startS3rver } from './helpers/emulators.ts'
import { freePort } from './helpers/ports.ts'

const MiB = 1024 * 1024

interface StoreFixture {
  store: Store
  /** The same kind of store pointed at a closed port; absent for stores without a network. */
  down?: () => Store
  /** True when `get` itself must reject on an aborted signal (SDK stores). */
  getRejectsWhenAborted: boolean
  close(): Promise<void>
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(Buffer.from(chunk as Buffer))
  return Buffer.concat(chunks)
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** A body of unknown length: no `size`, nothing the SDK can measure up front. */
function streamOf(...chunks: Buffer[]): Readable {
  return Readable.from(
    (async function* generate() {
      for (const chunk of chunks) yield chunk
    })(),
  )
}


function describeStore(name: string, setup: () => Promise<StoreFixture>, traits: AdminTraits): void {
  describe(`${name} store conformance`, { timeout: 60_000 }, () => {
    let fixture: StoreFixture
    let store: Store
    const payload = randomBytes(256 * 1024 + 7)
    const key = 'fixtures/payload.bin'

    before(async () => {
      fixture = await setup()
      store = fixture.store
      await store.put(key, streamOf(payload), { contentType: 'application/x-test', size: payload.length })
    })
    after(async () => {
      await store?.close?.()
      await fixture?.close()
    })

    it('head of an existing object returns its metadata', async () => {
      const meta = await store.head(key)
      assert.ok(meta)
      assert.equal(meta.size, payload.length)
      assert.equal(meta.contentType, 'application/x-test')
      assert.match(meta.etag ?? '', /^"[^"]+"$/)
      assert.ok(meta.lastModified instanceof Date && !Number.isNaN(meta.lastModified.getTime()))
    })

    it('get returns the whole object', async () => {
      const res = await store.get(key)
      assert.ok(res)
      assert.equal(res.range, undefined)
      assert.equal(res.meta.size, payload.length)
      assert.equal(res.meta.etag, (await store.head(key))?.etag)
      assert.equal(sha256(await readAll(res.body)), sha256(payload))
    })

    it('ranged get returns the slice and the total size', async () => {
      const range = { start: 1000, end: 70_000 }
      const res = await store.get(key, { range })
      assert.ok(res)
      assert.deepEqual(res.range, range)
      assert.equal(res.meta.size, payload.length)
      assert.deepEqual(await readAll(res.body), payload.subarray(range.start, range.end + 1))
      const last = await store.get(key, { range: { start: payload.length - 1, end: payload.length - 1 } })
      assert.ok(last)
      assert.deepEqual(await readAll(last.body), payload.subarray(payload.length - 1))
    })

    it('a missing key is null for head and get', async () => {
      assert.equal(await store.head('no/such/key.bin'), null)
      assert.equal(await store.get('no/such/key.bin'), null)
      assert.equal(await store.get('no/such/key.bin', { range: { start: 0, end: 9 } }), null)
    })

    it('put accepts a stream of unknown length and resolves with the stored metadata', async () => {
      const parts = [randomBytes(1000), randomBytes(65_536), Buffer.from('tail')]
      const meta = await store.put('stream/unknown-length.bin', streamOf(...parts), { contentType: 'application/octet-stream' })
      const whole = Buffer.concat(parts)
      assert.equal(meta.size, whole.length)
      assert.match(meta.etag ?? '', /^"[^"]+"$/)
      assert.equal(meta.etag, (await store.head('stream/unknown-length.bin'))?.etag)
      const res = await store.get('stream/unknown-length.bin')
      assert.ok(res)
      assert.deepEqual(await readAll(res.body), whole)
    })

    it('put of 0 bytes stores an empty object', async () => {
      const meta = await store.put('empty.bin', streamOf(), { contentType: 'application/octet-stream' })
      assert.equal(meta.size, 0)
      assert.equal((await store.head('empty.bin'))?.size, 0)
      const res = await store.get('empty.bin')
      assert.ok(res)
      assert.equal(res.meta.size, 0)
      assert.equal((await readAll(res.body)).length, 0)
    })

    it('put of 20 MiB from a generator (multipart) round-trips', async () => {
      const chunks = Array.from({ length: 20 }, () => randomBytes(MiB))
      const hash = createHash('sha256')
      for (const chunk of chunks) hash.update(chunk)
      const meta = await store.put('big/20mib.bin', streamOf(...chunks), { contentType: 'application/octet-stream' })
      assert.equal(meta.size, 20 * MiB)
      const res = await store.get('big/20mib.bin')
      assert.ok(res)
      assert.equal(res.meta.size, 20 * MiB)
      assert.equal(sha256(await readAll(res.body)), hash.digest('hex'))
    })

    for (const odd of ['with spaces/a b  c.txt', 'ünï/cødé ✓.txt', '100%.txt', 'pct/%41%2F%zz.txt', 'plus+and&amp=?.txt']) {
      it(`key ${JSON.stringify(odd)} round-trips`, async () => {
        const data = Buffer.from(`content of ${odd}`)
        await store.put(odd, streamOf(data), { contentType: 'text/plain' })
        assert.equal((await store.head(odd))?.size, data.length)
        const res = await store.get(odd)
        assert.ok(res)
        assert.deepEqual(await readAll(res.body), data)
      })
    }

    it('put stores the content type; head and get return it', async () => {
      const contentType = 'text/markdown; charset=utf-8'
      const meta = await store.put('typed/readme', streamOf(Buffer.from('# hi')), { contentType })
      assert.equal(meta.contentType, contentType)
      assert.equal((await store.head('typed/readme'))?.contentType, contentType)
      const res = await store.get('typed/readme')
      assert.ok(res)
      assert.equal(res.meta.contentType, contentType)
      res.body.destroy()
    })

    it("ifNoneMatch '*' creates a missing object and refuses an existing one", async () => {
      const created = await store.put('cond/create-only.txt', streamOf(Buffer.from('first')), { contentType: 'text/plain', ifNoneMatch: '*' })
      assert.equal(created.size, 5)
      await assert.rejects(
        store.put('cond/create-only.txt', streamOf(Buffer.from('second')), { contentType: 'text/plain', ifNoneMatch: '*' }),
        PreconditionFailedError,
      )
      const res = await store.get('cond/create-only.txt')
      assert.ok(res)
      assert.equal((await readAll(res.body)).toString(), 'first')
    })

    it('ifMatch replaces only the expected version', async () => {
      const first = await store.put('cond/if-match.txt', streamOf(Buffer.from('old')), { contentType: 'text/plain' })
      await assert.rejects(
        store.put('cond/if-match.txt', streamOf(Buffer.from('new')), { contentType: 'text/plain', ifMatch: '"not-the-etag"' }),
        PreconditionFailedError,
      )
      const intact = await store.get('cond/if-match.txt')
      assert.ok(intact)
      assert.equal((await readAll(intact.body)).toString(), 'old')
      assert.equal(intact.meta.etag, first.etag)
      await store.put('cond/if-match.txt', streamOf(Buffer.from('new')), { contentType: 'text/plain', ifMatch: first.etag })
      const replaced = await store.get('cond/if-match.txt')
      assert.ok(replaced)
      assert.equal((await readAll(replaced.body)).toString(), 'new')
      await assert.rejects(
        store.put('cond/never-existed.txt', streamOf(Buffer.from('x')), { contentType: 'text/plain', ifMatch: first.etag }),
        PreconditionFailedError,
      )
    })

    it('get with ifNoneMatch of the current ETag answers "not modified", without a body', async () => {
      const current = await store.head(key)
      assert.ok(current?.etag)
      const got = await store.get(key, { ifNoneMatch: current.etag })
      assert.ok(got && 'notModified' in got, `expected NotModified, got ${got && Object.keys(got).join()}`)
      assert.equal(got.etag, current.etag)
      assert.equal('body' in got, false)
      if (got.lastModified !== undefined) assert.equal(got.lastModified.getTime(), current.lastModified?.getTime())
      // RFC 9110 §13.2.2: If-None-Match is evaluated before Range.
      const ranged = await store.get(key, { ifNoneMatch: current.etag, range: { start: 0, end: 9 } })
      assert.ok(ranged && 'notModified' in ranged)
    })

    it('get with ifNoneMatch of another ETag returns the object', async () => {
      const got = await store.get(key, { ifNoneMatch: '"some-older-version"' })
      assert.ok(got && !('notModified' in got))
      assert.equal(sha256(await readAll(got.body)), sha256(payload))
      const ranged = await store.get(key, { ifNoneMatch: '"some-older-version"', range: { start: 10, end: 19 } })
      assert.ok(ranged && !('notModified' in ranged))
      assert.deepEqual(await readAll(ranged.body), payload.subarray(10, 20))
    })

    it('get with ifNoneMatch after the object was replaced returns the new version', async () => {
      const first = await store.put('cond/revalidate.txt', streamOf(Buffer.from('v1')), { contentType: 'text/plain' })
      assert.ok(first.etag)
      const second = await store.put('cond/revalidate.txt', streamOf(Buffer.from('v2, longer')), { contentType: 'text/plain' })
      assert.notEqual(second.etag, first.etag)
      const got = await store.get('cond/revalidate.txt', { ifNoneMatch: first.etag })
      assert.ok(got && !('notModified' in got))
      assert.equal(got.meta.etag, second.etag)
      assert.equal((await readAll(got.body)).toString(), 'v2, longer')
      assert.equal(await store.get('cond/no-such-key.txt', { ifNoneMatch: first.etag }), null)
    })

    it('a store that is down fails with UpstreamError kind connect', { skip: setupSkipsDown(name) }, async () => {
      const down = fixture.down?.()
      assert.ok(down)
      try {
        const isConnect = (error: unknown) => {
          assert.ok(error instanceof UpstreamError, `expected UpstreamError, got ${String(error)}`)
          assert.equal(error.kind, 'connect')
          assert.equal(error.store, down.id)
          return true
        }
        await assert.rejects(down.head('a.txt'), isConnect)
        await assert.rejects(down.get('a.txt'), isConnect)
        await assert.rejects(down.get('a.txt', { range: { start: 0, end: 1 } }), isConnect)
        await assert.rejects(down.put('a.txt', streamOf(Buffer.from('x')), { contentType: 'text/plain' }), isConnect)
      } finally {
        await down.close?.()
      }
    })

    it('get with an aborted signal rejects', async () => {
      const controller = new AbortController()
      controller.abort()
      if (fixture.getRejectsWhenAborted) {
        await assert.rejects(store.get(key, { signal: controller.signal }))
        await assert.rejects(store.head(key, { signal: controller.signal }))
      } else {
        // fs: opening is synchronous enough that the abort surfaces on the body instead.
        await assert.rejects(async () => {
          const res = await store.get(key, { signal: controller.signal })
          if (res) await readAll(res.body)
        })
      }
    })

    it('put aborted mid-body rejects and stores nothing', async () => {
      const controller = new AbortController()
      // A client that sends some bytes, then stalls (a generator parked in an await would make
      // destroy() wait for it: Readable.from can only stop a generator between yields).
      let sent = false
      const body = new Readable({
        read() {
          if (sent) return
          sent = true
          this.push(randomBytes(1000))
          setTimeout(() => controller.abort(), 20)
        },
      })
      await assert.rejects(store.put('aborted/put.bin', body, { contentType: 'application/octet-stream', signal: controller.signal }))
      assert.equal(await store.head('aborted/put.bin'), null)
    })

    it('put whose body fails rejects and stores nothing', async () => {
      const failure = new Error('client went away')
      const body = Readable.from(
        (async function* broken() {
          yield randomBytes(6 * MiB)
          throw failure
        })(),
      )
      await assert.rejects(store.put('aborted/broken.bin', body, { contentType: 'application/octet-stream' }))
      assert.equal(await store.head('aborted/broken.bin'), null)
    })

    it('aborting mid-body stops the stream', async () => {
      const controller = new AbortController()
      const res = await store.get('big/20mib.bin', { signal: controller.signal })
      assert.ok(res)
      await assert.rejects(async () => {
        let seen = 0
        for await (const chunk of res.body) {
          seen += (chunk as Buffer).length
          if (seen > MiB) controller.abort()
        }
      })
    })

    describeStoreAdmin(() => store, traits)
  })
}

/** Only network stores have a "down" variant. */
function setupSkipsDown(name: string): boolean {
  return name.startsWith('fs')
}

/**
 * Runs the suite on `name` as it is, and once more wrapped in the start-up decorators
 * (deadline, hedging and metrics, `registry.decorateStore`): a wrapper must be invisible to
 * callers. Hedging here is as eager as it can be (the median, from the first sample, no
 * budget), so many GETs race two attempts.
 */
function describeStoreAndDecorated(name: string, setup: () => Promise<StoreFixture>, traits: AdminTraits): void {
  describeStore(name, setup, traits)
  describeStore(`${name} + deadline + hedging + metrics`, async () => {
    const fixture = await setup()
    const decorations = { timeoutMs: 20_000, telemetry: new Telemetry(), hedge: { quantile: 0.5, minSamples: 1, maxRatio: 1 } }
    const { down } = fixture
    return { ...fixture, store: decorateStore(fixture.store, decorations), down: down && (() => decorateStore(down(), decorations)) }
  }, traits)
}

describeStoreAndDecorated('fs', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'cachegate-fs-store-'))
  return {
    store: createFsStore({ id: 'fs-test', root }),
    getRejectsWhenAborted: false,
    close: () => rm(root, { recursive: true, force: true }),
  }
}, { reservedKey: '.cachegate-meta/tmp/x' })

/** What s3rver 3.x does not do as S3 does (the cases it cannot check say so when skipped). */
const S3RVER_GAPS: AdminTraits = {
  noListParts: 's3rver has no ListParts (GET ?uploadId answers 405)',
  noUploadChecks: 's3rver has no AbortMultipartUpload and checks neither upload ids nor part ETags',
  listing: 's3rver lists in directory-walk order, drops nested common prefixes, and answers 500 to a truncated page (its tokens use crypto.createCipher, gone in Node 22)',
}

describeStoreAndDecorated('s3', async () => {
  const s3 = await startS3rver()
  const port = await freePort()
  const common = { bucket: s3.bucket, accessKey: s3.accessKey, secretKey: s3.secretKey, allowHttp: true }
  return {
    store: createS3Store({ id: 's3-test', endpoint: s3.endpoint, ...common }),
    // maxAttempts 1: the SDK would otherwise retry a refused connection with backoff.
    down: () => createS3Store({ id: 's3-down', endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1, ...common }),
    getRejectsWhenAborted: true,
    close: () => s3.close(),
  }
}, S3RVER_GAPS)

describeStoreAndDecorated('azure', async () => {
  const azurite = await startAzurite()
  const port = await freePort()
  return {
    store: createAzureStore({ id: 'azure-test', container: azurite.container, connectionString: azurite.connectionString }),
    down: () => createAzureStore({ id: 'azure-down', container: azurite.container, connectionString: azuriteConnectionString(port), maxAttempts: 1 }),
    getRejectsWhenAborted: true,
    close: () => azurite.close(),
  }
}, { reservedKey: '.cachegate-multipart/x', acceptsAnyToken: 'Azurite lists from the start on a marker it cannot read (Azure answers 400)' })

describe('s3 store creation', () => {
  it('refuses a plain http endpoint unless allowHttp is set', () => {
    assert.throws(() => createS3Store({ id: 'x', bucket: 'bucket', endpoint: 'http://127.0.0.1:9000' }), /allow_http/)
    assert.throws(() => createS3Store({ id: 'x', bucket: 'bucket', endpoint: 'not a url', allowHttp: true }), /not a URL/)
    assert.throws(() => createS3Store({ id: 'x', bucket: 'bucket', accessKey: 'only-one' }), /together/)
  })
})

describe('counting proxy', { timeout: 30_000 }, () => {
  const emulators = [
    {
      name: 's3rver',
      async start() {
        const s3 = await startS3rver()
        return {
          target: s3.endpoint,
          makeStore: (endpoint: string) =>
            createS3Store({ id: 'via-proxy', bucket: s3.bucket, endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey, maxAttempts: 1 }),
          close: () => s3.close(),
        }
      },
    },
    {
      name: 'azurite',
      async start() {
        const azurite = await startAzurite()
        const port = Number(/BlobEndpoint=http:\/\/127\.0\.0\.1:(\d+)/.exec(azurite.connectionString)?.[1])
        return {
          target: `http://127.0.0.1:${port}`,
          makeStore: (endpoint: string) =>
            createAzureStore({ id: 'via-proxy', container: azurite.container, connectionString: azurite.connectionString.replace(`http://127.0.0.1:${port}`, endpoint), maxAttempts: 1 }),
          close: () => azurite.close(),
        }
      },
    },
  ]
  for (const emulator of emulators) {
    it(`forwards signed requests to ${emulator.name}, counts them, and injects faults`, async () => {
      const backend = await emulator.start()
      const proxy = await startCountingProxy(backend.target)
      const store = backend.makeStore(proxy.url)
      try {
        const data = randomBytes(512 * 1024)
        await store.put('counted.bin', streamOf(data), { contentType: 'application/octet-stream' })
        assert.ok((proxy.counts.byMethod.PUT ?? 0) >= 1)
        proxy.reset()
        const res = await store.get('counted.bin')
        assert.ok(res)
        assert.deepEqual(await readAll(res.body), data)
        assert.equal(proxy.counts.requests, 1)
        assert.equal(proxy.counts.byMethod.GET, 1)
        assert.equal(proxy.counts.responseBytes, data.length)

        // A delay far above a loaded machine's own latency, so its absence below is unambiguous.
        proxy.configure({ delayMs: 800, failStatus: 503 })
        let started = Date.now()
        await assert.rejects(store.head('counted.bin'), (error: unknown) => error instanceof UpstreamError && error.kind === 'server')
        assert.ok(Date.now() - started >= 790)

        proxy.configure({ bytesPerSecond: 2 * MiB })
        started = Date.now()
        const slow = await store.get('counted.bin')
        assert.ok(slow)
        assert.deepEqual(await readAll(slow.body), data)
        assert.ok(Date.now() - started >= 200, 'a 512 KiB body at 2 MiB/s takes about 250 ms')

        proxy.configure({})
        started = Date.now()
        assert.equal((await store.head('counted.bin'))?.size, data.length)
        assert.ok(Date.now() - started < 790, 'configure({}) removed the delay')
      } finally {
        await store.close?.()
        await proxy.close()
        await backend.close()
      }
    })
  }
})
