/**
 * Read-path defects of issue 10, each against a gateway over a real fs store, wrapped where
 * the case needs a store that behaves otherwise (no ETags, a held answer, a failing page).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { utimes, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Singleflight } from '../src/cache/singleflight.ts'
import { DomainError, UpstreamError, isDomainError } from '../src/errors.ts'
import { createFsStore } from '../src/stores/fs.ts'
import type { ObjectMeta, Store } from '../src/stores/types.ts'
import { BEARER, startGateway, tempDir } from './helpers/gateway.ts'

const auth = { Authorization: `Bearer ${BEARER}` }
const KiB = 1024

/** The fs store, with overrides. */
function wrap(fs: Store, over: Partial<Store>): Store {
  return { type: fs.type, id: fs.id, head: fs.head.bind(fs), get: fs.get.bind(fs), put: fs.put.bind(fs), ...over }
}

const withoutEtag = (meta: ObjectMeta): ObjectMeta => ({ ...meta, etag: undefined })

describe('read-path defects', () => {
  it('a follower of an uncacheable object never gets another version under the first one’s headers', async () => {
    const root = await tempDir()
    const fs = createFsStore({ id: 'local', root })
    const v1 = Buffer.alloc(64 * KiB, 1)
    await fs.put('big.bin', Readable.from([v1]), { contentType: 'application/x-test', size: v1.length })
    let gate: (() => void) | undefined
    const held = new Promise<void>((resolve) => (gate = resolve))
    let first = true
    const store = wrap(fs, {
      async get(key, options) {
        const got = await fs.get(key, options)
        if (first) {
          first = false
          await held // the first GET answers only once the object was replaced
        }
        return got
      },
    })
    const gw = await startGateway({ stores: new Map([['local', store]]), raw: { cache: { max_object_size: '16KiB', page_size: 0 } } })
    try {
      const reads = [0, 1].map(async () => {
        const res = await fetch(`${gw.url}/local/big.bin`, { headers: auth })
        return { status: res.status, body: Buffer.from(await res.arrayBuffer()) }
      })
      await sleep(100)
      await fs.put('big.bin', Readable.from([Buffer.alloc(64 * KiB, 2)]), { contentType: 'application/x-test', size: 64 * KiB })
      gate!()
      const results = await Promise.all(reads)
      for (const { status, body } of results) {
        // The leader streams the version it opened; the follower fails (502) rather than
        // sending version 2's bytes under version 1's ETag.
        if (status === 200) assert.ok(body.equals(v1), 'a 200 carries the version its headers name')
        else assert.equal(status, 502)
      }
      assert.ok(results.some((r) => r.status === 502), 'the follower read version 2 and refused it')
    } finally {
      gate?.()
      await gw.close()
    }
  })

  it('page caching off: a ranged read that finds the object replaced fails once, then reads the new version', async () => {
    const root = await tempDir()
    const fs = createFsStore({ id: 'local', root })
    await fs.put('big.bin', Readable.from([Buffer.alloc(64 * KiB, 1)]), { contentType: 'application/x-test', size: 64 * KiB })
    const gw = await startGateway({ stores: new Map([['local', fs]]), raw: { cache: { max_object_size: '16KiB', page_size: 0 } } })
    try {
      const range = { ...auth, Range: 'bytes=0-9' }
      assert.equal((await fetch(`${gw.url}/local/big.bin`, { headers: range })).status, 206)
      // Replaced behind the gateway's back, with another size.
      await fs.put('big.bin', Readable.from([Buffer.alloc(80 * KiB, 2)]), { contentType: 'application/x-test', size: 80 * KiB })
      assert.equal((await fetch(`${gw.url}/local/big.bin`, { headers: range })).status, 502)
      const next = await fetch(`${gw.url}/local/big.bin`, { headers: range })
      assert.equal(next.status, 206, 'the old size is forgotten, not kept to fail every later read')
      assert.equal(next.headers.get('content-range'), `bytes 0-9/${80 * KiB}`)
      assert.deepEqual([...Buffer.from(await next.arrayBuffer())], Array(10).fill(2))
    } finally {
      await gw.close()
    }
  })

  it('pages of an object without an ETag are told apart by Last-Modified, not by size alone', async () => {
    const root = await tempDir()
    const fs = createFsStore({ id: 'local', root })
    const store = wrap(fs, {
      head: async (key, options) => {
        const meta = await fs.head(key, options)
        return meta && withoutEtag(meta)
      },
      get: async (key, options) => {
        const got = await fs.get(key, options)
        return got && { ...got, meta: withoutEtag(got.meta) }
      },
      put: async (key, body, options) => withoutEtag(await fs.put(key, body, options)),
    })
    const v1 = Buffer.alloc(64 * KiB, 1)
    await fs.put('paged.bin', Readable.from([v1]), { contentType: 'application/x-test', size: v1.length })
    await utimes(path.join(root, 'paged.bin'), new Date('2020-01-01'), new Date('2020-01-01'))
    const gw = await startGateway({ stores: new Map([['local', store]]), raw: { cache: { max_object_size: '16KiB', page_size: '16KiB' } } })
    try {
      const range = { ...auth, Range: 'bytes=0-9' }
      assert.deepEqual([...Buffer.from(await (await fetch(`${gw.url}/local/paged.bin`, { headers: range })).arrayBuffer())], Array(10).fill(1))
      // Same size, new bytes, written through the gateway (which forgets what it knew).
      const put = await fetch(`${gw.url}/local/paged.bin`, { method: 'PUT', headers: { ...auth, 'Content-Type': 'application/x-test' }, body: Buffer.alloc(64 * KiB, 2) })
      assert.equal(put.status, 200)
      const again = await fetch(`${gw.url}/local/paged.bin`, { headers: range })
      assert.equal(again.status, 206)
      assert.deepEqual([...Buffer.from(await again.arrayBuffer())], Array(10).fill(2), 'the old version’s page is not served')
    } finally {
      await gw.close()
    }
  })

  it('an object stored without a useful type is typed by its extension, then by its magic bytes', async () => {
    const root = await tempDir()
    // A 1×1 GIF, written straight to the store's directory: no sidecar, no extension, so the
    // store reports application/octet-stream.
    const gif = Buffer.from('47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b', 'hex')
    await writeFile(path.join(root, 'picture'), gif)
    await writeFile(path.join(root, 'photo.jpg'), randomBytes(100))
    const gw = await startGateway({ root })
    try {
      const sniffed = await fetch(`${gw.url}/local/picture`, { headers: auth })
      assert.equal(sniffed.headers.get('content-type'), 'image/gif')
      assert.ok(Buffer.from(await sniffed.arrayBuffer()).equals(gif))
      // A hit keeps the type it was filled with; HEAD agrees.
      assert.equal((await fetch(`${gw.url}/local/picture`, { headers: auth })).headers.get('content-type'), 'image/gif')
      assert.equal((await fetch(`${gw.url}/local/picture`, { method: 'HEAD', headers: auth })).headers.get('content-type'), 'image/gif')
      assert.equal((await fetch(`${gw.url}/local/photo.jpg`, { method: 'HEAD', headers: auth })).headers.get('content-type'), 'image/jpeg')
    } finally {
      await gw.close()
    }
  })

  it('a ranged read whose first page fails before its first byte is a 5xx, not a cut connection', async () => {
    const root = await tempDir()
    const fs = createFsStore({ id: 'local', root })
    await fs.put('big.bin', Readable.from([Buffer.alloc(64 * KiB, 1)]), { contentType: 'application/x-test', size: 64 * KiB })
    const store = wrap(fs, {
      async get(key, options) {
        const got = await fs.get(key, options)
        if (!got || !options?.range) return got
        got.body.destroy()
        const failing = new Readable({
          read() {
            this.destroy(new Error('connection reset by the store'))
          },
        })
        return { ...got, body: failing }
      },
    })
    const gw = await startGateway({ stores: new Map([['local', store]]), raw: { cache: { max_object_size: '16KiB', page_size: '16KiB' } } })
    try {
      const res = await fetch(`${gw.url}/local/big.bin`, { headers: { ...auth, Range: 'bytes=100-200' } })
      assert.equal(res.status, 502)
    } finally {
      await gw.close()
    }
  })
})

describe('Singleflight', () => {
  it('joins a running flight, forgets it when it settles, and tells a detached flight it is no longer current', async () => {
    const flights = new Singleflight<string, number>()
    let release!: (n: number) => void
    let currentAtEnd: boolean | undefined
    const a = flights.run('k', async (isCurrent) => {
      const n = await new Promise<number>((resolve) => (release = resolve))
      currentAtEnd = isCurrent()
      return n
    })
    const b = flights.run('k', async () => 2)
    assert.equal(a.joined, false)
    assert.equal(b.joined, true)
    assert.equal(flights.size, 1)
    flights.forget('k')
    const c = flights.run('k', async () => 3)
    assert.equal(c.joined, false)
    await sleep(1)
    release(1)
    assert.deepEqual(await Promise.all([a.value, b.value, c.value]), [1, 1, 3])
    assert.equal(currentAtEnd, false)
    await sleep(1)
    assert.equal(flights.size, 0)
  })

  it('`until` keeps a flight joinable after it resolves', async () => {
    const flights = new Singleflight<string, string>()
    let done!: () => void
    const finished = new Promise<void>((resolve) => (done = resolve))
    await flights.run('k', async () => 'v', () => finished).value
    assert.equal(flights.run('k', async () => 'other').joined, true)
    done()
    await sleep(1)
    assert.equal(flights.size, 0)
  })
})

describe('domain errors', () => {
  it('are recognised by class, not by a name anyone can set', () => {
    const impostor = new Error('x')
    impostor.name = 'UpstreamError'
    assert.equal(isDomainError(impostor), false)
    assert.equal(isDomainError(new UpstreamError('s', 'io', 'x')), true)
    assert.ok(new UpstreamError('s', 'io', 'x') instanceof DomainError)
  })
})
