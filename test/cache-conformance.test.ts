/**
 * One conformance suite for every `Cache` (as unstorage's `testDriver`, hono's
 * `router/common.case.test.ts`): memory, disk on a temp dir, and the hybrid of both.
 * Then the hybrid's own behaviour: disk hits, promotion, invalidation.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import { sliceBytes, toBuffer } from '../src/cache/bytes.ts'
import { openDiskCache } from '../src/cache/disk/index.ts'
import { createHybridCache } from '../src/cache/hybrid.ts'
import { createMemoryCache } from '../src/cache/memory.ts'
import { cacheKey } from '../src/cache/keys.ts'
import type { Cache, CacheHit } from '../src/cache/types.ts'
import type { ByteRange, ObjectMeta } from '../src/stores/types.ts'

const KiB = 1024
const MiB = 1024 * KiB
const BOUND = MiB

interface Fixture {
  cache: Cache
  close(): Promise<void>
  /** Closes the cache and opens it again on the same storage, as a restart does; absent for memory. */
  reopen?(): Promise<Cache>
}

/** The clock every tier is given: tests move it, nothing sleeps. */
const clock = { ms: 1_700_000_000_000 }
const now = () => clock.ms

const dirs: string[] = []
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-cache-'))
  dirs.push(dir)
  return dir
}

async function bytesOf(hit: CacheHit, range?: ByteRange): Promise<Buffer> {
  if (hit.tier === 'memory') return toBuffer(range ? sliceBytes(hit.body, range.start, range.end) : hit.body)
  const chunks: Buffer[] = []
  for await (const chunk of hit.open(range)) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function metaOf(body: Buffer, extra: Partial<ObjectMeta> = {}): ObjectMeta {
  return { size: body.byteLength, contentType: 'application/x-test', etag: '"e1"', lastModified: new Date('2024-05-06T07:08:09.123Z'), ...extra }
}

function describeCache(name: string, factory: (maxBytes: number, now: () => number) => Promise<Fixture>): void {
  describe(`${name} cache conformance`, () => {
    let fixture: Fixture
    let cache: Cache
    beforeEach(async () => {
      fixture = await factory(BOUND, now)
      cache = fixture.cache
    })
    afterEach(() => fixture.close())

    it('set then get returns the same metadata and bytes', async () => {
      const body = randomBytes(100 * KiB + 3)
      const meta = metaOf(body)
      assert.equal(await cache.set('b\u0000k.bin', meta, body), true)
      const hit = await cache.get('b\u0000k.bin')
      assert.ok(hit)
      assert.deepEqual(hit.meta, meta)
      assert.deepEqual(await bytesOf(hit), body)
    })

    it('metadata without an ETag or Last-Modified round-trips without inventing them', async () => {
      const body = Buffer.from('plain')
      const meta: ObjectMeta = { size: body.byteLength, contentType: 'text/plain; charset=utf-8' }
      assert.equal(await cache.set('b\u0000plain.txt', meta, body), true)
      const hit = await cache.get('b\u0000plain.txt')
      assert.ok(hit)
      assert.deepEqual(hit.meta, meta)
    })

    it('a missing key is undefined', async () => {
      assert.equal(await cache.get('b\u0000missing'), undefined)
    })

    it('open(range) returns exactly the slice', async () => {
      const body = randomBytes(300 * KiB)
      await cache.set('b\u0000ranged', metaOf(body), body)
      const hit = await cache.get('b\u0000ranged')
      assert.ok(hit)
      for (const range of [
        { start: 0, end: 0 },
        { start: 1000, end: 70_000 },
        { start: body.length - 1, end: body.length - 1 },
        { start: 0, end: body.length - 1 },
        { start: 5, end: body.length - 2 },
      ]) {
        assert.deepEqual(await bytesOf(hit, range), body.subarray(range.start, range.end + 1), JSON.stringify(range))
      }
    })

    it('a body given as chunks (as a large fill keeps it) reads back whole and by range', async () => {
      const body = randomBytes(300 * KiB + 17)
      const chunks: Buffer[] = []
      for (let at = 0, step = 1; at < body.length; at += step, step = (step * 7 + 13) % (40 * KiB) || 1) chunks.push(body.subarray(at, at + step))
      assert.equal(await cache.set('b\u0000chunked', metaOf(body), chunks), true)
      const hit = await cache.get('b\u0000chunked')
      assert.ok(hit)
      assert.deepEqual(await bytesOf(hit), body)
      for (const range of [
        { start: 0, end: 0 },
        { start: 1, end: 65_537 },
        { start: 100_000, end: 250_000 },
        { start: body.length - 1, end: body.length - 1 },
      ]) {
        assert.deepEqual(await bytesOf(hit, range), body.subarray(range.start, range.end + 1), JSON.stringify(range))
      }
    })

    it('delete removes the entry and is idempotent', async () => {
      const body = randomBytes(10)
      await cache.set('b\u0000gone', metaOf(body), body)
      await cache.delete('b\u0000gone')
      assert.equal(await cache.get('b\u0000gone'), undefined)
      await cache.delete('b\u0000gone')
      await cache.delete('b\u0000never-set')
    })

    it('set overwrites: the newer bytes and metadata win', async () => {
      const first = randomBytes(20 * KiB)
      const second = randomBytes(7 * KiB)
      await cache.set('b\u0000same', metaOf(first, { etag: '"one"' }), first)
      assert.equal(await cache.set('b\u0000same', metaOf(second, { etag: '"two"' }), second), true)
      const hit = await cache.get('b\u0000same')
      assert.ok(hit)
      assert.equal(hit.meta.etag, '"two"')
      assert.deepEqual(await bytesOf(hit), second)
      assert.equal(Object.values(cache.stats()).reduce((n, tier) => Math.max(n, tier.entries), 0), 1)
    })

    it('stays within its byte bound after many inserts', async () => {
      const bodies = new Map<string, Buffer>()
      for (let i = 0; i < 150; i++) {
        const body = randomBytes(8 * KiB + ((i * 7919) % (40 * KiB)))
        bodies.set(`b\u0000many/${i}`, body)
        assert.equal(await cache.set(`b\u0000many/${i}`, metaOf(body), body), true)
      }
      for (const [tier, stats] of Object.entries(cache.stats())) {
        assert.ok(stats.bytes <= stats.maxBytes, `${tier}: ${stats.bytes} > ${stats.maxBytes}`)
        assert.ok(stats.entries > 5 && stats.entries < 150, `${tier}: ${stats.entries} entries`)
      }
      let held = 0
      for (const [key, body] of bodies) {
        const hit = await cache.get(key)
        if (!hit) continue
        held++
        assert.deepEqual(await bytesOf(hit), body, key)
      }
      assert.ok(held > 5)
    })

    it('refuses an object larger than the bound, and drops the older copy it was meant to replace', async () => {
      const small = randomBytes(100)
      await cache.set('b\u0000huge', metaOf(small), small)
      const huge = randomBytes(BOUND + 1)
      assert.equal(await cache.set('b\u0000huge', metaOf(huge), huge), false)
      assert.equal(await cache.get('b\u0000huge'), undefined)
      for (const stats of Object.values(cache.stats())) assert.ok(stats.bytes <= stats.maxBytes)
    })

    it('stores a zero-byte object', async () => {
      const empty = Buffer.alloc(0)
      assert.equal(await cache.set('b\u0000empty', metaOf(empty), empty), true)
      const hit = await cache.get('b\u0000empty')
      assert.ok(hit)
      assert.equal(hit.meta.size, 0)
      assert.equal((await bytesOf(hit)).length, 0)
    })

    it('a hit carries the time it was stored; a new set stores a new time', async () => {
      const body = randomBytes(10 * KiB)
      const stored = clock.ms
      assert.equal(await cache.set('b\u0000dated', metaOf(body), body), true)
      clock.ms += 60_000
      assert.equal((await cache.get('b\u0000dated'))?.storedAt, stored)
      assert.equal(cache.peek?.('b\u0000dated')?.storedAt ?? stored, stored)
      assert.equal(await cache.set('b\u0000dated', metaOf(body), body), true)
      assert.equal((await cache.get('b\u0000dated'))?.storedAt, clock.ms)
    })

    it('set with a storedAt keeps it (a copy of an entry stored earlier)', async () => {
      const body = randomBytes(KiB)
      assert.equal(await cache.set('b\u0000copied', metaOf(body), body, { storedAt: 1_600_000_000_000 }), true)
      assert.equal((await cache.get('b\u0000copied'))?.storedAt, 1_600_000_000_000)
    })

    it('the stored-at time survives a restart', async (t) => {
      if (!fixture.reopen) return t.skip('not persistent')
      const body = randomBytes(10 * KiB)
      const stored = clock.ms
      await cache.set('b\u0000kept', metaOf(body), body)
      await cache.set('b\u0000copied', metaOf(body), body, { storedAt: 1_600_000_000_000 })
      clock.ms += 3_600_000
      cache = await fixture.reopen()
      const hit = await cache.get('b\u0000kept')
      assert.ok(hit)
      assert.equal(hit.storedAt, stored)
      assert.deepEqual(await bytesOf(hit), body)
      assert.equal((await cache.get('b\u0000copied'))?.storedAt, 1_600_000_000_000)
    })

    it('refresh restarts the age of the version it names, and of no other', async () => {
      const body = randomBytes(KiB)
      const meta = metaOf(body, { etag: '"v1"' })
      const stored = clock.ms
      await cache.set('b\u0000fresh', meta, body)
      cache.refresh?.('b\u0000fresh', { ...meta, etag: '"v2"' }, stored + 1000)
      assert.equal((await cache.get('b\u0000fresh'))?.storedAt, stored, 'another ETag: untouched')
      cache.refresh?.('b\u0000fresh', meta, stored + 5000)
      assert.equal((await cache.get('b\u0000fresh'))?.storedAt, stored + 5000)
      assert.equal(cache.peek?.('b\u0000fresh')?.storedAt ?? stored + 5000, stored + 5000)
      cache.refresh?.('b\u0000absent', meta, stored)
      assert.equal(await cache.get('b\u0000absent'), undefined)
    })

    it('keys(prefix) lists each entry under the prefix once', async () => {
      const body = randomBytes(100)
      for (const key of [cacheKey('b', 'p/1'), cacheKey('b', 'p/2'), `${cacheKey('b', 'p/2')}\u0000page:0`, cacheKey('b', 'q'), cacheKey('c', 'p/1')]) await cache.set(key, metaOf(body), body)
      assert.deepEqual(cache.keys?.(cacheKey('b', 'p/')).sort(), [cacheKey('b', 'p/1'), cacheKey('b', 'p/2'), `${cacheKey('b', 'p/2')}\u0000page:0`].sort())
      assert.deepEqual(cache.keys?.(cacheKey('b', 'zzz')), [])
    })

    it('keys with unicode, slashes, dots and NUL separators stay distinct', async () => {
      const keys = [
        cacheKey('bucket', 'path/to/ké y.txt'),
        cacheKey('bucket', 'path/to/ke\u0301 y.txt'),
        cacheKey('bucket/path', 'to/ké y.txt'),
        cacheKey('a', 'b\u0000c'),
        cacheKey('a', 'b/c'),
        cacheKey('bucket', '../../../etc/passwd'),
        cacheKey('bucket', '🐈/日本語/%2F%00'),
        cacheKey('bucket', 'x'.repeat(1000)),
      ]
      for (const [i, key] of keys.entries()) await cache.set(key, metaOf(Buffer.from(`body ${i}`)), Buffer.from(`body ${i}`))
      for (const [i, key] of keys.entries()) {
        const hit = await cache.get(key)
        assert.ok(hit, JSON.stringify(key))
        assert.equal((await bytesOf(hit)).toString(), `body ${i}`)
      }
    })
  })
}

describeCache('memory', async (maxBytes, now) => ({ cache: createMemoryCache({ maxBytes, now }), close: async () => {} }))

describeCache('disk', async (maxBytes, now) => {
  const dir = await tempDir()
  let cache = await openDiskCache({ path: dir, maxBytes, now })
  return {
    get cache() {
      return cache
    },
    close: () => cache.close(),
    async reopen() {
      await cache.close()
      cache = await openDiskCache({ path: dir, maxBytes, now })
      return cache
    },
  }
})

describeCache('hybrid', async (maxBytes, now) => {
  const dir = await tempDir()
  const open = async () => createHybridCache({ memory: createMemoryCache({ maxBytes, now }), disk: await openDiskCache({ path: dir, maxBytes, now }), now })
  let cache = await open()
  return {
    get cache() {
      return cache
    },
    close: () => cache.close(),
    async reopen() {
      await cache.close()
      cache = await open()
      return cache
    },
  }
})

describe('hybrid cache', () => {
  async function setup(options: { promoteAfter?: number; maxPromoteSize?: number; memoryBytes?: number } = {}) {
    const memory = createMemoryCache({ maxBytes: options.memoryBytes ?? BOUND })
    const disk = await openDiskCache({ path: await tempDir(), maxBytes: 4 * BOUND })
    const cache = createHybridCache({ memory, disk, promoteAfter: options.promoteAfter, maxPromoteSize: options.maxPromoteSize })
    return { memory, disk, cache }
  }

  it('writes on insert: both tiers hold the object', async () => {
    const { memory, disk, cache } = await setup()
    const body = randomBytes(1000)
    await cache.set('b\u0000k', metaOf(body), body)
    assert.equal((await memory.get('b\u0000k'))?.tier, 'memory')
    assert.equal((await disk.get('b\u0000k'))?.tier, 'disk')
    assert.deepEqual(Object.keys(cache.stats()).sort(), ['disk', 'memory'])
    await cache.close()
  })

  it('serves a disk hit by streaming and promotes it on the second disk hit', async () => {
    const { memory, cache } = await setup()
    const body = randomBytes(64 * KiB)
    await cache.set('b\u0000warm', metaOf(body), body)
    await memory.delete('b\u0000warm')
    const first = await cache.get('b\u0000warm')
    assert.equal(first?.tier, 'disk')
    assert.deepEqual(await bytesOf(first), body)
    await cache.settled()
    assert.equal(await memory.get('b\u0000warm'), undefined, 'not promoted on the first disk hit')
    const second = await cache.get('b\u0000warm')
    assert.equal(second?.tier, 'disk')
    assert.deepEqual(await bytesOf(second), body) // promotion copies the bytes this read streams
    await cache.settled()
    const promoted = await cache.get('b\u0000warm')
    assert.equal(promoted?.tier, 'memory')
    assert.deepEqual(await bytesOf(promoted), body)
    await cache.close()
  })

  it('does not promote objects cycling through more than memory holds (no churn), but does promote a hot one', async () => {
    // Memory holds about 4 of these objects; 12 are read in a cycle, so each comes back only
    // after 11 others: promoting would evict it again before its next read.
    const { memory, cache } = await setup({ memoryBytes: 4 * 16 * KiB + 4096, maxPromoteSize: 16 * KiB })
    const bodies = Array.from({ length: 12 }, () => randomBytes(16 * KiB - 600))
    for (const [i, body] of bodies.entries()) await cache.set(`b\u0000c${i}`, metaOf(body), body)
    for (let i = 0; i < 12; i++) await memory.delete(`b\u0000c${i}`)
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 12; i++) await bytesOf((await cache.get(`b\u0000c${i}`))!)
    }
    await cache.settled()
    assert.equal(memory.stats().memory!.entries, 0, 'a cyclic scan promoted nothing')
    for (let i = 0; i < 2; i++) await bytesOf((await cache.get('b\u0000c0'))!)
    await cache.settled()
    assert.equal((await memory.get('b\u0000c0'))?.tier, 'memory', 'a key re-read at once is promoted')
    await cache.close()
  })

  it('promoteAfter 1 promotes on the first disk hit; objects over maxPromoteSize never', async () => {
    const { memory, cache } = await setup({ promoteAfter: 1, maxPromoteSize: 10 * KiB })
    const small = randomBytes(10 * KiB)
    const large = randomBytes(10 * KiB + 1)
    await cache.set('b\u0000small', metaOf(small), small)
    await cache.set('b\u0000large', metaOf(large), large)
    await Promise.all([memory.delete('b\u0000small'), memory.delete('b\u0000large')])
    await bytesOf((await cache.get('b\u0000small'))!)
    for (let i = 0; i < 3; i++) await bytesOf((await cache.get('b\u0000large'))!)
    await cache.settled()
    assert.equal((await memory.get('b\u0000small'))?.tier, 'memory')
    assert.equal(await memory.get('b\u0000large'), undefined)
    await cache.close()
  })

  it('a promoted entry keeps the time it was first stored, before and after a restart', async () => {
    const dir = await tempDir()
    const open = async () => {
      const memory = createMemoryCache({ maxBytes: BOUND, now })
      return { memory, cache: createHybridCache({ memory, disk: await openDiskCache({ path: dir, maxBytes: 4 * BOUND, now }), promoteAfter: 1, now }) }
    }
    let { memory, cache } = await open()
    const body = randomBytes(64 * KiB)
    const stored = clock.ms
    await cache.set('b\u0000aged', metaOf(body), body)
    await memory.delete('b\u0000aged')
    clock.ms += 60_000
    const fromDisk = await cache.get('b\u0000aged')
    assert.equal(fromDisk?.tier, 'disk')
    assert.equal(fromDisk.storedAt, stored)
    assert.deepEqual(await bytesOf(fromDisk), body)
    await cache.settled()
    assert.deepEqual(await memory.get('b\u0000aged').then((hit) => [hit?.tier, hit?.storedAt]), ['memory', stored])

    await cache.close()
    clock.ms += 60_000
    ;({ memory, cache } = await open())
    await bytesOf((await cache.get('b\u0000aged'))!)
    await cache.settled()
    assert.deepEqual(await cache.get('b\u0000aged').then((hit) => [hit?.tier, hit?.storedAt]), ['memory', stored])
    await cache.close()
  })

  it('a delete during a promotion wins: the old bytes are not re-cached', async () => {
    const { memory, cache } = await setup({ promoteAfter: 1 })
    const body = randomBytes(256 * KiB)
    await cache.set('b\u0000raced', metaOf(body), body)
    await memory.delete('b\u0000raced')
    assert.equal((await cache.get('b\u0000raced'))?.tier, 'disk')
    await cache.delete('b\u0000raced')
    await cache.settled()
    assert.equal(await memory.get('b\u0000raced'), undefined)
    assert.equal(await cache.get('b\u0000raced'), undefined)
    await cache.close()
  })

  it('an object too large for memory is still cached on disk', async () => {
    const { cache } = await setup({ memoryBytes: 64 * KiB })
    const body = randomBytes(200 * KiB)
    assert.equal(await cache.set('b\u0000big', metaOf(body), body), true)
    const hit = await cache.get('b\u0000big')
    assert.equal(hit?.tier, 'disk')
    assert.deepEqual(await bytesOf(hit), body)
    await cache.close()
  })
})
