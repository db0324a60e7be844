import type { Readable } from 'node:stream'
import type { ByteRange, ObjectMeta } from '../stores/types.ts'
import type { Bytes } from './bytes.ts'

/**
 * A cached object. Memory hits carry their bytes; disk hits open a stream on demand. Both carry
 * `storedAt`, when the object was stored (ms since epoch): a copy from one tier to another keeps
 * the original time, so its age is that of the bytes (revalidation will need it).
 */
export type CacheHit =
  | { tier: 'memory'; meta: ObjectMeta; storedAt: number; body: Bytes }
  | { tier: 'disk'; meta: ObjectMeta; storedAt: number; open(range?: ByteRange): Readable }

export interface SetOptions {
  /** When the object was first stored (ms since epoch), for a copy of a cached entry. Default: now. */
  storedAt?: number
}

export interface TierStats {
  entries: number
  /** Bytes charged against the bound (body plus per-entry overhead). */
  bytes: number
  maxBytes: number
}

/**
 * One cache tier, or a composite of tiers behind the same interface (the hybrid cache).
 * Keys are opaque strings; the gateway builds them from (bucket_id, key).
 */
export interface Cache {
  get(key: string): Promise<CacheHit | undefined>
  /**
   * Synchronous lookup of what is in memory (counts as a use), for the hot path: a memory hit
   * is served without a single await. Tiers without memory omit it.
   */
  peek?(key: string): Extract<CacheHit, { tier: 'memory' }> | undefined
  /** Stores a complete object; false when it does not fit (too large) and was not stored. */
  set(key: string, meta: ObjectMeta, body: Bytes, options?: SetOptions): Promise<boolean>
  delete(key: string): Promise<void>
  /**
   * Marks the entry under `key` as confirmed current at `storedAt` (a revalidation got a 304),
   * if it still holds the version `meta` describes (same size and ETag). Only the age changes;
   * a disk tier keeps the new time in its index, not in the file (after a restart the entry is
   * revalidated once more).
   */
  refresh?(key: string, meta: ObjectMeta, storedAt: number): void
  /** The keys held, or being written, that start with `prefix` (purge), each once across tiers. */
  keys?(prefix: string): string[]
  /** Per tier, e.g. `{ memory: {...}, disk: {...} }`. */
  stats(): Record<string, TierStats>
  close?(): Promise<void>
}
