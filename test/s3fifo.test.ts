import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { LRUCache } from 'lru-cache'
import { S3FifoCache } from '../src/cache/s3fifo.ts'
import type { EvictReason } from '../src/cache/s3fifo.ts'
import { prng } from './helpers/prng.ts'


type Drop = [key: string, value: string, reason: EvictReason]

function recorder(maxBytes: number): { cache: S3FifoCache<string, string>; drops: Drop[] } {
  const drops: Drop[] = []
  const cache = new S3FifoCache<string, string>({ maxBytes, onEvict: (k, v, r) => drops.push([k, v, r]) })
  return { cache, drops }
}

describe('S3FifoCache', () => {
  it('validates its options and sizes with TypeErrors', () => {
    for (const maxBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '10']) {
      assert.throws(() => new S3FifoCache({ maxBytes: maxBytes as number }), TypeError)
    }
    assert.throws(() => new S3FifoCache(null as unknown as { maxBytes: number }), TypeError)
    assert.throws(() => new S3FifoCache({ maxBytes: 10, onEvict: 'x' as unknown as () => void }), TypeError)
    const cache = new S3FifoCache<string, string>({ maxBytes: 10 })
    for (const size of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => cache.set('k', 'v', size), TypeError)
    }
    assert.equal(cache.size, 0)
  })

  it('returns undefined for a missing key from get and peek', () => {
    const cache = new S3FifoCache<string, number>({ maxBytes: 100 })
    assert.equal(cache.get('nope'), undefined)
    assert.equal(cache.peek('nope'), undefined)
    assert.equal(cache.has('nope'), false)
    assert.equal(cache.delete('nope'), false)
    cache.set('a', 0, 1)
    assert.equal(cache.get('a'), 0)
    assert.equal(cache.peek('a'), 0)
    assert.deepEqual([...cache.keys()], ['a'])
  })

  it('never holds more than maxBytes, and its accounting matches what it reports (random ops)', () => {
    for (const seed of [1, 2, 3, 42]) {
      const rand = prng(seed)
      const maxBytes = 10_000
      const shadow = new Map<number, number>() // key → size, kept from set() results and onEvict
      const cache = new S3FifoCache<number, number>({
        maxBytes,
        onEvict: (key, value, reason) => {
          assert.ok(reason === 'evict' || reason === 'delete' || reason === 'replace')
          if (reason !== 'replace' || shadow.get(key) === value) shadow.delete(key)
        },
      })
      for (let i = 0; i < 20_000; i++) {
        const key = Math.floor(rand() * 500)
        const op = rand()
        if (op < 0.5) {
          // Mostly small sizes, some big ones, a few over the budget, some zero-byte entries.
          const r = rand()
          const size = r < 0.02 ? maxBytes + 1 : r < 0.1 ? Math.floor(rand() * maxBytes) : r < 0.12 ? 0 : Math.floor(rand() * 300)
          // The value is the size, so onEvict can tell which generation it drops.
          if (cache.set(key, size, size)) shadow.set(key, size)
          else assert.equal(size > maxBytes, true)
        } else if (op < 0.9) {
          const value = cache.get(key)
          assert.equal(value, shadow.get(key))
        } else if (op < 0.99) {
          const present = shadow.has(key)
          assert.equal(cache.delete(key), present)
        } else {
          cache.clear()
        }
        assert.ok(cache.bytes <= maxBytes, `bytes ${cache.bytes} > ${maxBytes} at op ${i}`)
        assert.equal(cache.size, shadow.size)
      }
      let sum = 0
      for (const size of shadow.values()) sum += size
      assert.equal(cache.bytes, sum)
      assert.deepEqual(new Set(cache.keys()), new Set(shadow.keys()))
    }
  })

  it('is size-aware: one big object evicts many small ones', () => {
    const { cache, drops } = recorder(1000)
    for (let i = 0; i < 100; i++) cache.set(`s${i}`, 'small', 10)
    assert.equal(cache.bytes, 1000)
    assert.equal(cache.set('big', 'big', 600), true)
    assert.equal(cache.size, 41)
    assert.equal(cache.bytes, 1000)
    assert.equal(drops.length, 60)
    assert.ok(drops.every(([, , reason]) => reason === 'evict'))
    assert.equal(cache.peek('big'), 'big')
  })

  it('rejects an object larger than maxBytes and removes the older value under its key', () => {
    const { cache, drops } = recorder(100)
    cache.set('k', 'old', 40)
    cache.set('other', 'x', 10)
    assert.equal(cache.set('k', 'huge', 101), false)
    assert.equal(cache.has('k'), false)
    assert.equal(cache.bytes, 10)
    assert.equal(cache.size, 1)
    assert.deepEqual(drops, [['k', 'old', 'replace']])
    assert.equal(cache.set('fits', 'exactly', 100), true)
    assert.equal(cache.bytes, 100)
  })

  it('keeps a frequently read working set through a flood of one-hit wonders (scan resistance)', () => {
    const maxBytes = 1000
    const s3 = new S3FifoCache<string, number>({ maxBytes })
    const lru = new LRUCache<string, number>({ maxSize: maxBytes, sizeCalculation: () => 5 })
    const hot = Array.from({ length: 100 }, (_, i) => `hot${i}`) // 500 bytes: fits main (900)
    const misses = { s3: 0, lru: 0 }
    const read = (key: string, counted: boolean): void => {
      if (s3.get(key) === undefined) {
        if (counted) misses.s3++
        s3.set(key, 1, 5)
      }
      if (lru.get(key) === undefined) {
        if (counted) misses.lru++
        lru.set(key, 1)
      }
    }
    for (let round = 0; round < 3; round++) for (const key of hot) read(key, false)
    for (let i = 0; i < 20_000; i++) {
      read(`once${i}`, false) // 5000 bytes of one-hit keys between two reads of a hot key
      if (i % 10 === 0) read(hot[(i / 10) % hot.length] ?? '', true)
    }
    assert.equal(misses.s3, 0)
    // The same flood empties an LRU of the same size before every read (but the first few).
    assert.ok(misses.lru >= 1900, `LRU missed ${misses.lru}`)
    assert.ok(s3.bytes <= maxBytes)
  })

  it('moves a key read while in small to main, and drops an unread one to the ghost queue', () => {
    const cache = new S3FifoCache<string, number>({ maxBytes: 100 })
    cache.set('read', 1, 10)
    cache.set('unread', 1, 10)
    cache.get('read')
    for (let i = 0; i < 1000; i++) cache.set(`once${i}`, 1, 10)
    assert.equal(cache.has('read'), true)
    assert.equal(cache.has('unread'), false)
  })

  it('readmits a key found in the ghost queue straight to main', () => {
    const cache = new S3FifoCache<string, number>({ maxBytes: 100 })
    for (let i = 0; i < 11; i++) cache.set(`k${i}`, i, 10) // k0 goes from small to the ghost queue
    assert.equal(cache.has('k0'), false)
    cache.set('k0', 0, 10) // a ghost hit: into main, not small
    for (let i = 0; i < 1000; i++) cache.set(`once${i}`, 1, 10)
    assert.equal(cache.peek('k0'), 0) // never read, yet it survived the flood that went through small
    // The ghost queue is bounded (150 bytes here): k1 was forgotten long ago, so it lands in small.
    cache.set('k1', 1, 10)
    for (let i = 0; i < 1000; i++) cache.set(`again${i}`, 1, 10)
    assert.equal(cache.has('k1'), false)
  })

  it('caps the frequency at 3, so a once-hot key ages out of main', () => {
    const cache = new S3FifoCache<string, number>({ maxBytes: 100 })
    cache.set('old-hot', 1, 10)
    for (let i = 0; i < 1000; i++) cache.get('old-hot')
    // Keys read once each are promoted to main, making main evict round after round.
    for (let i = 0; i < 100; i++) {
      cache.set(`warm${i}`, 1, 10)
      cache.get(`warm${i}`)
    }
    assert.equal(cache.has('old-hot'), false)
  })

  it('reports onEvict reasons: evict, delete, replace, and none for an identical value', () => {
    const { cache, drops } = recorder(30)
    const same = 'same'
    cache.set('a', 'a1', 10)
    cache.set('a', 'a2', 10)
    cache.set('b', same, 10)
    cache.set('b', same, 10)
    cache.set('c', 'c', 10)
    cache.set('d', 'd', 10) // full: evicts the oldest in small
    cache.delete('c')
    cache.clear()
    assert.deepEqual(drops, [
      ['a', 'a1', 'replace'],
      ['a', 'a2', 'evict'],
      ['c', 'c', 'delete'],
      ['b', same, 'delete'],
      ['d', 'd', 'delete'],
    ])
    assert.equal(cache.size, 0)
    assert.equal(cache.bytes, 0)
  })

  it('accounts bytes on replace and delete', () => {
    const cache = new S3FifoCache<string, string>({ maxBytes: 100 })
    cache.set('a', 'x', 30)
    cache.set('b', 'y', 20)
    assert.equal(cache.bytes, 50)
    cache.set('a', 'x2', 70)
    assert.equal(cache.bytes, 90)
    assert.equal(cache.size, 2)
    cache.set('a', 'x3', 5)
    assert.equal(cache.bytes, 25)
    assert.equal(cache.delete('b'), true)
    assert.equal(cache.delete('b'), false)
    assert.equal(cache.bytes, 5)
    assert.equal(cache.size, 1)
    assert.equal(cache.get('a'), 'x3')
    // A replacement that needs room evicts others, never itself.
    cache.set('c', 'z', 50)
    cache.set('a', 'x4', 100)
    assert.deepEqual([...cache.keys()], ['a'])
    assert.equal(cache.bytes, 100)
  })
})
