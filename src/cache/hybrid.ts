/**
 * Memory in front of disk, behind the same `Cache` interface as each tier.
 *
 * Write-on-insert, not write-on-evict: every object cached goes to both tiers at once, so the
 * disk holds everything the gateway has cached, including the hottest objects that may never
 * leave memory. That is what restart recovery needs: after a restart or a crash the hot set is
 * served from disk with no upstream requests, whereas write-on-evict would lose exactly the
 * objects that were never evicted. It also keeps the memory bound honest: a memory eviction
 * only drops a Buffer; write-on-evict would have to keep evicted bodies alive past the bound
 * until their disk writes finish, and would turn every eviction burst (a scan) into a write
 * burst. The cost is one disk write per cached object, one-hit wonders included (the disk
 * tier's S3-FIFO evicts those first), and the memory set duplicated on disk, a small share
 * since the disk tier is usually many times larger than memory.
 *
 * A disk hit is served by streaming from the file; it is promoted to memory (read into a
 * Buffer in the background) on its second disk hit within a bounded window, not the first, so
 * a scan over disk-resident objects does not read every file twice and churn memory.
 */
import type { ObjectMeta } from '../stores/types.ts'
import { type Readable, Transform } from 'node:stream'
import type { Cache, CacheHit, SetOptions, TierStats } from './types.ts'
import { type Bytes, keep } from './bytes.ts'
import { link } from '../streams.ts'
import { Singleflight } from './singleflight.ts'

export interface HybridCacheOptions {
  memory: Cache
  /** A disk tier; `touch` (optional) lets memory hits count towards keeping the disk copy. */
  disk: Cache & { touch?(key: string): void }
  /** Largest object promoted from disk to memory (the gateway's `max_object_size`). Default: 1/8 of memory's bound. */
  maxPromoteSize?: number
  /**
   * Disk hits needed before promotion: 1 promotes on every disk hit. Default 2, and then only
   * when the key came back soon enough for memory to have kept it (reuse distance).
   */
  promoteAfter?: number
  /** Keys whose disk hits are counted towards promotion (oldest forgotten first). Default 4096. */
  promoteWindow?: number
  /** Clock for the stored-at time both tiers record on a set (ms since epoch). Default `Date.now`. */
  now?: () => number
}

export interface HybridCache extends Cache {
  /** Resolves once promotions in progress have finished (tests, shutdown). */
  settled(): Promise<void>
  close(): Promise<void>
}

/**
 * @example
 * const cache = createHybridCache({
 *   memory: createMemoryCache({ maxBytes: 1 * 2 ** 30 }),
 *   disk: await openDiskCache({ path: '/var/lib/cachegate/cache', maxBytes: 10 * 2 ** 30 }),
 *   maxPromoteSize: config.cache.max_object_size,
 * })
 */
export function createHybridCache(options: HybridCacheOptions): HybridCache {
  const { memory, disk } = options
  const memoryBound = Object.values(memory.stats()).reduce((sum, tier) => sum + tier.maxBytes, 0)
  const maxPromoteSize = options.maxPromoteSize ?? Math.floor(memoryBound / 8)
  const promoteAfter = options.promoteAfter ?? 2
  const promoteWindow = options.promoteWindow ?? 4096
  const now = options.now ?? Date.now
  if (!Number.isSafeInteger(maxPromoteSize) || maxPromoteSize < 0) throw new TypeError('maxPromoteSize must be a non-negative integer')
  if (!Number.isSafeInteger(promoteAfter) || promoteAfter < 1) throw new TypeError('promoteAfter must be a positive integer')
  if (!Number.isSafeInteger(promoteWindow) || promoteWindow < 0) throw new TypeError('promoteWindow must be a non-negative integer')

  /** Disk hits per key not yet promoted; a Map keeps insertion order, so the oldest goes first. */
  const diskHits = new Map<string, { hits: number; tick: number }>()
  let diskTicks = 0
  /** Promotions reading from disk; a set or delete of the key makes theirs stale. */
  const promoting = new Singleflight<string, void>()

  /**
   * Counts a disk hit; on the `promoteAfter`-th (if memory would keep it: see the reuse
   * distance below), returns the hit with an `open` that copies
   * the bytes it streams anyway into memory (a whole-object read), so promotion costs no
   * second read of the file. A ranged open falls back to reading the file once more.
   */
  function promote(key: string, hit: Extract<CacheHit, { tier: 'disk' }>): Extract<CacheHit, { tier: 'disk' }> {
    if (hit.meta.size > maxPromoteSize || promoting.has(key)) return hit
    const hits = (diskHits.get(key)?.hits ?? 0) + 1
    const last = diskHits.get(key)?.tick
    const tick = ++diskTicks
    diskHits.delete(key)
    // Reuse distance: disk hits (of any key) since this key's previous one. If more objects
    // of this size than memory holds came in between, memory would have evicted it again
    // before its next use: promoting it would only churn (a scan or a cyclic working set).
    const capacity = Math.max(1, Math.floor(memoryBound / Math.max(hit.meta.size, 1)))
    const wouldStay = last !== undefined && tick - last <= capacity
    if (hits < promoteAfter || (promoteAfter > 1 && !wouldStay)) {
      diskHits.set(key, { hits, tick })
      if (diskHits.size > promoteWindow) diskHits.delete(diskHits.keys().next().value!)
      return hit
    }
    let started = false
    const run = (read: Promise<Bytes>) => {
      started = true
      // Observed here: a promotion of this key that is already running (joined below) never
      // awaits this read, and a client leaving mid-read rejects it.
      read.catch(() => {})
      promoting
        .run(key, async (isCurrent) => {
          const body = await read
          // The copy keeps the disk entry's time: its age is that of the bytes, not of the promotion.
          if (isCurrent()) await memory.set(key, hit.meta, body, { storedAt: hit.storedAt })
        })
        // A failed read was already reported and the entry dropped by the disk tier; the response has its own stream.
        .value.catch(() => {})
    }
    return {
      ...hit,
      open(range) {
        const whole = !range || (range.start === 0 && range.end === hit.meta.size - 1)
        // Another hit of this key is promoting it already: just read the file.
        if (promoting.has(key)) return hit.open(range)
        if (started || !whole) {
          if (!started) run(readAll(hit))
          return hit.open(range)
        }
        const { stream, body } = recording(hit.open(range), hit.meta.size)
        run(body)
        return stream
      },
    }
  }

  function forget(key: string): void {
    promoting.forget(key)
    diskHits.delete(key)
  }

  async function settled(): Promise<void> {
    while (promoting.size > 0) await Promise.allSettled(promoting.running())
  }

  return {
    peek(key) {
      const inMemory = memory.peek?.(key)
      if (inMemory) disk.touch?.(key)
      return inMemory
    },

    async get(key) {
      const inMemory = await memory.get(key)
      if (inMemory) {
        disk.touch?.(key)
        return inMemory
      }
      const onDisk = await disk.get(key)
      return onDisk?.tier === 'disk' ? promote(key, onDisk) : onDisk
    },

    async set(key: string, meta: ObjectMeta, body: Bytes, options?: SetOptions) {
      forget(key)
      // One time for both tiers, so a memory hit and a later disk hit of this copy agree.
      const stored = { storedAt: options?.storedAt ?? now() }
      const [inMemory, onDisk] = await Promise.all([memory.set(key, meta, body, stored), disk.set(key, meta, body, stored)])
      return inMemory || onDisk
    },

    async delete(key) {
      forget(key)
      await Promise.all([memory.delete(key), disk.delete(key)])
    },

    refresh(key, meta, storedAt) {
      memory.refresh?.(key, meta, storedAt)
      disk.refresh?.(key, meta, storedAt)
    },

    keys: (prefix) => [...new Set([...(memory.keys?.(prefix) ?? []), ...(disk.keys?.(prefix) ?? [])])],

    stats(): Record<string, TierStats> {
      return { ...memory.stats(), ...disk.stats() }
    },

    settled,

    async close() {
      await settled()
      await Promise.all([memory.close?.(), disk.close?.()])
    },
  }
}

/**
 * Passes `source` through unchanged (backpressure intact) and keeps a copy of what went by:
 * `body` resolves with all of it once the consumer has read to the end.
 */
function recording(source: Readable, size: number): { stream: Readable; body: Promise<Bytes> } {
  const chunks: Buffer[] = []
  let bytes = 0
  let settle!: { resolve(b: Bytes): void; reject(e: Error): void }
  const body = new Promise<Bytes>((resolve, reject) => (settle = { resolve, reject }))
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk)
      bytes += chunk.byteLength
      callback(null, chunk)
    },
    flush(callback) {
      if (bytes === size) settle.resolve(keep(chunks, size))
      else settle.reject(new Error(`read ${bytes} of ${size} bytes`))
      callback()
    },
  })
  stream.once('close', () => settle.reject(new Error('closed before the end')))
  return { stream: link(source, stream, { destroySource: true }), body }
}

async function readAll(hit: Extract<CacheHit, { tier: 'disk' }>): Promise<Bytes> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of hit.open()) {
    chunks.push(chunk as Buffer)
    bytes += (chunk as Buffer).byteLength
  }
  if (bytes !== hit.meta.size) throw new Error(`disk entry gave ${bytes} of ${hit.meta.size} bytes`)
  return keep(chunks, bytes)
}
