import type { ObjectMeta } from '../stores/types.ts'
import { type Bytes, byteLength } from './bytes.ts'
import { S3FifoCache } from './s3fifo.ts'
import { keysWith } from './keys.ts'
import type { Cache, CacheHit, TierStats } from './types.ts'

/** Bytes charged per entry on top of the body: key, metadata and bookkeeping, estimated. */
export const ENTRY_OVERHEAD = 256
/** And per chunk of a body kept as chunks (a Buffer object and its array slot). */
export const CHUNK_OVERHEAD = 96

export interface MemoryCacheOptions {
  /** Bound on the bytes held (bodies plus per-entry overhead). */
  maxBytes: number
  /** Clock for each entry's stored-at time (ms since epoch). Default `Date.now`. */
  now?: () => number
}

interface Entry {
  meta: ObjectMeta
  body: Bytes
  storedAt: number
}

/**
 * The memory tier: whole objects as Buffers (or chunk lists, see bytes.ts), bounded by their real byte count and evicted
 * by S3-FIFO (scan-resistant, size-aware).
 *
 * @example
 * const cache = createMemoryCache({ maxBytes: 512 * 2 ** 20 })
 * await cache.set('media\0a.jpg', meta, bytes)
 */
export function createMemoryCache(options: MemoryCacheOptions): Cache & { peek(key: string): Extract<CacheHit, { tier: 'memory' }> | undefined } {
  if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes < 0) throw new TypeError('maxBytes must be a non-negative integer')
  const now = options.now ?? Date.now
  const entries = new S3FifoCache<string, Entry>({ maxBytes: Math.max(options.maxBytes, 1) })
  const charge = (key: string, body: Bytes) => byteLength(body) + key.length * 2 + ENTRY_OVERHEAD + (Buffer.isBuffer(body) ? 0 : body.length * CHUNK_OVERHEAD)

  function peek(key: string): Extract<CacheHit, { tier: 'memory' }> | undefined {
    const entry = entries.get(key)
    return entry && { tier: 'memory', meta: entry.meta, storedAt: entry.storedAt, body: entry.body }
  }

  return {
    peek,
    get: async (key) => peek(key),
    async set(key, meta, body, { storedAt = now() } = {}) {
      if (options.maxBytes === 0) return false
      return entries.set(key, { meta, body, storedAt }, charge(key, body))
    },
    async delete(key) {
      entries.delete(key)
    },
    refresh(key, meta, storedAt) {
      const entry = entries.peek(key)
      if (entry && entry.meta.size === meta.size && entry.meta.etag === meta.etag) entry.storedAt = storedAt
    },
    keys: (prefix) => keysWith(entries.keys(), prefix),
    stats(): Record<string, TierStats> {
      return { memory: { entries: entries.size, bytes: entries.bytes, maxBytes: options.maxBytes } }
    },
  }
}
