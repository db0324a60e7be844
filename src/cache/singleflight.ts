/**
 * One in-flight computation per key, joined by every concurrent caller (lru-cache's
 * `#backgroundFetch` idea, as a class of its own). The gateway's only singleflight: whole-object
 * fills, HEADs, pages and hybrid promotions all coalesce through it.
 *
 * A flight is forgotten when its promise settles, or later, when `until(value)` settles (a fill
 * stays joinable until the cache holds its bytes, so nobody fetches them twice meanwhile).
 * `forget(key)` detaches a flight early (a PUT replaced the object): later callers start a new
 * one, and the old flight can tell through `isCurrent()` that it must not cache what it got.
 *
 * @example
 * const heads = new Singleflight<string, ObjectMeta | null>()
 * const { value } = heads.run(key, () => store.head(key))
 */
export class Singleflight<K, V> {
  readonly #flights = new Map<K, Promise<V>>()

  /**
   * The flight for `key`: the running one (`joined: true`), else a new one from `start`.
   * `start` gets `isCurrent`, true while this flight is still the one registered for `key`.
   */
  run(key: K, start: (isCurrent: () => boolean) => Promise<V>, until?: (value: V) => Promise<unknown> | undefined): { value: Promise<V>; joined: boolean } {
    const running = this.#flights.get(key)
    if (running) return { value: running, joined: true }
    let flight: Promise<V> | undefined
    const isCurrent = () => flight !== undefined && this.#flights.get(key) === flight
    const forget = () => this.forget(key, flight)
    flight = Promise.resolve().then(() => start(isCurrent))
    this.#flights.set(key, flight)
    flight.then((value) => {
      const more = until?.(value)
      if (more) more.then(forget, forget)
      else forget()
    }, forget)
    return { value: flight, joined: false }
  }

  /** The running flight for `key`, if any. */
  peek(key: K): Promise<V> | undefined {
    return this.#flights.get(key)
  }

  has(key: K): boolean {
    return this.#flights.has(key)
  }

  /** Detaches the flight for `key` (only if it is still `flight`, when given). */
  forget(key: K, flight?: Promise<V>): void {
    if (flight === undefined || this.#flights.get(key) === flight) this.#flights.delete(key)
  }

  /** Detaches every flight whose key `matches` (a purge by prefix). */
  forgetWhere(matches: (key: K) => boolean): void {
    for (const key of [...this.#flights.keys()]) if (matches(key)) this.#flights.delete(key)
  }

  /** Every flight running now (to wait for them all: tests, shutdown). */
  running(): Promise<V>[] {
    return [...this.#flights.values()]
  }

  get size(): number {
    return this.#flights.size
  }
}
