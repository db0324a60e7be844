import { LRUCache } from 'lru-cache'
import { toBuffer } from '../cache/bytes.ts'
import { metaRecordKey } from '../cache/keys.ts'
import type { Cache } from '../cache/types.ts'
import type { ObjectMeta } from '../stores/types.ts'

/** Metadata of objects seen recently, so ranged reads of large objects need no HEAD each time. */
const KNOWN_META_ENTRIES = 10_000

/** What is known of an object, and since when (ms since epoch): the age freshness checks read. */
export interface Known {
  meta: ObjectMeta
  storedAt: number
}

/**
 * What the gateway knows of objects it has seen: their metadata, in memory (bounded), and for
 * large (paged) objects also as a small record cached beside their pages, so after a restart
 * their pages are served with no HEAD upstream.
 */
export class KnownObjects {
  readonly #known = new LRUCache<string, Known>({ max: KNOWN_META_ENTRIES })
  readonly #cache: Cache
  readonly #isPaged: (meta: ObjectMeta) => boolean
  readonly #now: () => number

  constructor(cache: Cache, isPaged: (meta: ObjectMeta) => boolean, now: () => number = Date.now) {
    this.#cache = cache
    this.#isPaged = isPaged
    this.#now = now
  }

  /** Records `meta` as current now (a large object's record is written again: its age restarts). */
  remember(ck: string, meta: ObjectMeta): void {
    const storedAt = this.#now()
    this.#known.set(ck, { meta, storedAt })
    if (!this.#isPaged(meta)) return
    const record = Buffer.from(JSON.stringify({ ...meta, lastModified: meta.lastModified?.toISOString() }))
    void this.#cache.set(metaRecordKey(ck), { size: record.byteLength, contentType: 'application/json' }, record, { storedAt }).catch(() => {})
  }

  /** Metadata of an object from memory, else of a large object from its cached record. */
  async recall(ck: string): Promise<Known | undefined> {
    const known = this.#known.get(ck)
    if (known) return known
    const hit = await this.#cache.get(metaRecordKey(ck))
    if (!hit) return undefined
    try {
      const bytes = hit.tier === 'memory' ? toBuffer(hit.body) : Buffer.concat(await hit.open().toArray())
      const parsed = JSON.parse(bytes.toString()) as ObjectMeta & { lastModified?: string }
      const meta: ObjectMeta = { ...parsed, lastModified: parsed.lastModified ? new Date(parsed.lastModified) : undefined }
      // The record's age is the object's: it survives restarts on the disk tier.
      const recalled = { meta, storedAt: hit.storedAt }
      this.#known.set(ck, recalled)
      return recalled
    } catch {
      return undefined
    }
  }

  /** Forgets the object (it changed, or a PUT replaced it), its cached record included. */
  async forget(ck: string): Promise<void> {
    this.#known.delete(ck)
    await this.#cache.delete(metaRecordKey(ck))
  }

  /** Forgets, in memory only, every object whose cache key starts with `prefix` (purge drops the records). */
  forgetPrefix(prefix: string): void {
    for (const ck of [...this.#known.keys()]) if (ck.startsWith(prefix)) this.#known.delete(ck)
  }
}
