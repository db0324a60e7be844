/**
 * S3-FIFO eviction, bounded in bytes: Yang et al., "FIFO queues are all you need for cache
 * eviction", SOSP 2023 (https://doi.org/10.1145/3600006.3613147), following the authors'
 * reference implementation (libCacheSim `S3FIFO.c`) with sizes in bytes.
 *
 * Three FIFO queues: a small probationary queue (5% of the bytes) that new keys enter, a main
 * queue (the rest) for keys read again while in small, and a ghost queue that remembers only
 * the keys small recently dropped, so that a key coming back soon is admitted straight to main.
 * One-hit wonders and scans pass through small without displacing the working set in main.
 * Every operation is O(1) amortised: a read only bumps a 2-bit counter; queues are intrusive
 * doubly linked lists.
 */

export type EvictReason = 'evict' | 'delete' | 'replace'

export interface S3FifoOptions<K, V> {
  /** Byte budget; `bytes` never exceeds it once `set` returns. A positive safe integer. */
  maxBytes: number
  /**
   * Called when a value leaves the cache: `evict` by the policy, `delete` by `delete()` or
   * `clear()`, `replace` when `set()` overwrites it with a different value (or rejects an
   * oversized one). Runs synchronously once the cache is consistent; it must not modify the cache.
   */
  onEvict?: (key: K, value: V, reason: EvictReason) => void
}

// Tuned with bench/sim.ts (bench/README.md) within the paper's design space. The paper and
// libCacheSim default to a 10% small queue and a ghost as big as main (0.9); on our workloads
// 5% and 1.5 came within 0.1 hit-ratio points of those defaults on zipf, tiny-cache and
// large-object workloads, and did better on one-hit wonders (+0.5) and looping scans (+20), whose
// keys come back after longer than a main-sized ghost remembers.
/** Share of the byte budget for the small queue. */
const SMALL_RATIO = 0.05
/** The ghost queue remembers dropped keys whose sizes add up to this multiple of the budget. */
const GHOST_RATIO = 1.5
/** Reads needed while in small to be moved to main rather than dropped (libCacheSim's `move-to-main-threshold`). */
const PROMOTE_THRESHOLD = 1
/** The frequency counter is 2 bits wide, as in the paper. */
const MAX_FREQ = 3

interface Link<T> {
  prev: T | null
  next: T | null
  size: number
}

class Entry<K, V> implements Link<Entry<K, V>> {
  key: K
  value: V
  size: number
  freq = 0
  inMain = false
  prev: Entry<K, V> | null = null
  next: Entry<K, V> | null = null
  constructor(key: K, value: V, size: number) {
    this.key = key
    this.value = value
    this.size = size
  }
}

class Ghost<K> implements Link<Ghost<K>> {
  key: K
  size: number
  prev: Ghost<K> | null = null
  next: Ghost<K> | null = null
  constructor(key: K, size: number) {
    this.key = key
    this.size = size
  }
}

/** Intrusive FIFO: `head` is the oldest node, the next to leave. */
class Fifo<T extends Link<T>> {
  head: T | null = null
  tail: T | null = null
  bytes = 0
  length = 0

  push(node: T): void {
    node.prev = this.tail
    node.next = null
    if (this.tail) this.tail.next = node
    else this.head = node
    this.tail = node
    this.bytes += node.size
    this.length++
  }

  remove(node: T): void {
    if (node.prev) node.prev.next = node.next
    else this.head = node.next
    if (node.next) node.next.prev = node.prev
    else this.tail = node.prev
    node.prev = node.next = null
    this.bytes -= node.size
    this.length--
  }

  clear(): void {
    this.head = this.tail = null
    this.bytes = this.length = 0
  }
}

/**
 * A byte-bounded, scan-resistant cache with S3-FIFO eviction. Sizes are whatever the caller
 * charges for an entry (body bytes plus any per-entry overhead it wants to account for).
 *
 * @example
 * ```ts
 * const cache = new S3FifoCache<string, Uint8Array>({
 *   maxBytes: 256 * 1024 * 1024,
 *   onEvict: (key, _body, reason) => log.debug({ key, reason }, 'cache drop'),
 * })
 * cache.set('media/cat.jpg', body, body.byteLength) // false if larger than maxBytes
 * cache.get('media/cat.jpg') // the body; counts as a use for eviction
 * ```
 */
export class S3FifoCache<K, V> {
  readonly maxBytes: number
  readonly #onEvict: S3FifoOptions<K, V>['onEvict']
  readonly #smallTarget: number
  readonly #ghostTarget: number
  readonly #entries = new Map<K, Entry<K, V>>()
  readonly #small = new Fifo<Entry<K, V>>()
  readonly #main = new Fifo<Entry<K, V>>()
  readonly #ghosts = new Map<K, Ghost<K>>()
  readonly #ghost = new Fifo<Ghost<K>>()

  constructor(options: S3FifoOptions<K, V>) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('S3FifoCache: options must be an object')
    }
    const { maxBytes, onEvict } = options
    if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new TypeError(`S3FifoCache: maxBytes must be a positive safe integer, got ${String(maxBytes)}`)
    }
    if (onEvict !== undefined && typeof onEvict !== 'function') {
      throw new TypeError('S3FifoCache: onEvict must be a function')
    }
    this.maxBytes = maxBytes
    this.#onEvict = onEvict
    this.#smallTarget = Math.max(1, Math.floor(maxBytes * SMALL_RATIO))
    this.#ghostTarget = Math.max(1, Math.floor(maxBytes * GHOST_RATIO))
  }

  /** Number of entries. */
  get size(): number {
    return this.#entries.size
  }

  /** Sum of the sizes of the entries; always ≤ `maxBytes` between calls. */
  get bytes(): number {
    return this.#small.bytes + this.#main.bytes
  }

  /** The value under `key`, counting the read towards keeping it. */
  get(key: K): V | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.freq < MAX_FREQ) entry.freq++
    return entry.value
  }

  /** The value under `key`, without counting a read. */
  peek(key: K): V | undefined {
    return this.#entries.get(key)?.value
  }

  has(key: K): boolean {
    return this.#entries.has(key)
  }

  /**
   * Stores `value` charged `size` bytes, evicting as needed. Returns false and stores nothing
   * when `size > maxBytes`; any older entry under `key` is then removed (reason `replace`),
   * since the caller meant to supersede it.
   */
  set(key: K, value: V, size: number): boolean {
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw new TypeError(`S3FifoCache: size must be a non-negative safe integer, got ${String(size)}`)
    }
    const old = this.#entries.get(key)
    let inMain = false
    let freq = 0
    if (old !== undefined) {
      // An overwrite keeps the entry's queue and frequency (it goes to the back of that queue).
      this.#unlink(old)
      inMain = old.inMain
      freq = old.freq
      if (size > this.maxBytes || !Object.is(old.value, value)) this.#onEvict?.(key, old.value, 'replace')
    }
    if (size > this.maxBytes) return false
    if (old === undefined) {
      const ghost = this.#ghosts.get(key)
      if (ghost !== undefined) {
        // A key found in the ghost queue was dropped from small too early: admit it to main.
        this.#ghost.remove(ghost)
        this.#ghosts.delete(key)
        inMain = true
      }
    }
    while (this.bytes + size > this.maxBytes) this.#evict()
    const entry = new Entry(key, value, size)
    entry.inMain = inMain
    entry.freq = freq
    ;(inMain ? this.#main : this.#small).push(entry)
    this.#entries.set(key, entry)
    return true
  }

  delete(key: K): boolean {
    const entry = this.#entries.get(key)
    if (entry === undefined) return false
    this.#unlink(entry)
    this.#onEvict?.(key, entry.value, 'delete')
    return true
  }

  /** Removes every entry (reason `delete`) and forgets the ghost keys. */
  clear(): void {
    const entries = [...this.#entries.values()]
    this.#entries.clear()
    this.#small.clear()
    this.#main.clear()
    this.#ghosts.clear()
    this.#ghost.clear()
    if (this.#onEvict === undefined) return
    for (const entry of entries) this.#onEvict(entry.key, entry.value, 'delete')
  }

  /** The cached keys, in no particular order. */
  keys(): IterableIterator<K> {
    return this.#entries.keys()
  }

  #unlink(entry: Entry<K, V>): void {
    ;(entry.inMain ? this.#main : this.#small).remove(entry)
    this.#entries.delete(entry.key)
  }

  /** Frees at least one entry's bytes. Only called while `bytes > 0`. */
  #evict(): void {
    // libCacheSim: evict from small while it is over its share, or when main is empty.
    if (this.#small.length > 0 && (this.#small.bytes >= this.#smallTarget || this.#main.length === 0)) {
      if (this.#evictSmall()) return
    }
    this.#evictMain()
  }

  /** Moves re-read keys from small to main until one key is dropped; false if small emptied first. */
  #evictSmall(): boolean {
    for (let entry = this.#small.head; entry !== null; entry = this.#small.head) {
      this.#small.remove(entry)
      if (entry.freq >= PROMOTE_THRESHOLD) {
        // The frequency moves with the entry, as in libCacheSim.
        entry.inMain = true
        this.#main.push(entry)
        continue
      }
      this.#entries.delete(entry.key)
      this.#remember(entry.key, entry.size)
      this.#onEvict?.(entry.key, entry.value, 'evict')
      return true
    }
    return false
  }

  /** CLOCK over main: a read entry loses one unit of frequency and goes round again. */
  #evictMain(): void {
    for (let entry = this.#main.head; entry !== null; entry = this.#main.head) {
      this.#main.remove(entry)
      if (entry.freq > 0) {
        entry.freq--
        this.#main.push(entry)
        continue
      }
      this.#entries.delete(entry.key)
      this.#onEvict?.(entry.key, entry.value, 'evict')
      return
    }
  }

  #remember(key: K, size: number): void {
    // A zero-byte entry still costs a key in memory: charge it one byte so the ghost stays bounded.
    const ghost = new Ghost(key, Math.max(1, size))
    this.#ghosts.set(key, ghost)
    this.#ghost.push(ghost)
    while (this.#ghost.bytes > this.#ghostTarget && this.#ghost.head !== null) {
      const oldest = this.#ghost.head
      this.#ghost.remove(oldest)
      this.#ghosts.delete(oldest.key)
    }
  }
}
