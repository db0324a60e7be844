/**
 * Negative caching (`cache.negative_ttl`): a 404 from the store remembered for a while, so
 * repeated lookups of a missing key cost no upstream request. Bounded in entries; the oldest
 * is forgotten first. A PUT or a purge clears an entry at once.
 */

/** Missing keys remembered at most (a few hundred bytes each). */
export const NEGATIVE_ENTRIES = 10_000

export class NegativeCache {
  /** Cache key → when the entry expires (ms). A Map keeps insertion order: oldest first. */
  readonly #expires = new Map<string, number>()
  readonly #max: number
  readonly #now: () => number

  constructor(options: { max?: number; now: () => number }) {
    this.#max = options.max ?? NEGATIVE_ENTRIES
    this.#now = options.now
  }

  /** Remembers that `ck` is missing for `ttlMs` (nothing when `ttlMs` is 0). */
  remember(ck: string, ttlMs: number): void {
    if (!(ttlMs > 0)) return
    this.#expires.delete(ck)
    this.#expires.set(ck, this.#now() + ttlMs)
    if (this.#expires.size > this.#max) this.#expires.delete(this.#expires.keys().next().value!)
  }

  /** Whether `ck` is known to be missing (an expired entry is dropped). */
  has(ck: string): boolean {
    if (this.#expires.size === 0) return false
    const expires = this.#expires.get(ck)
    if (expires === undefined) return false
    if (expires > this.#now()) return true
    this.#expires.delete(ck)
    return false
  }

  /** Forgets `ck`; true if it was remembered. */
  forget(ck: string): boolean {
    return this.#expires.delete(ck)
  }

  /** Forgets every key starting with `prefix`; how many were remembered. */
  forgetPrefix(prefix: string): number {
    let dropped = 0
    for (const ck of this.#expires.keys()) {
      if (ck.startsWith(prefix) && this.#expires.delete(ck)) dropped++
    }
    return dropped
  }

  get size(): number {
    return this.#expires.size
  }
}
