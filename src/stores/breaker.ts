/** `closed`: calls go through; `open`: calls are skipped; `half-open`: one probe is out. */
export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  /** Consecutive counted failures that open the breaker (default 5). */
  threshold?: number
  /** How long an open breaker skips calls before it lets one probe through (default 30 s). */
  cooldownMs?: number
  /** The clock, in ms (default `performance.now`); tests inject their own. */
  now?: () => number
}

export const BREAKER_THRESHOLD = 5
export const BREAKER_COOLDOWN_MS = 30_000

/**
 * A circuit breaker for one store. After `threshold` consecutive failures it opens: callers
 * skip the store. After `cooldownMs` the next caller that asks gets the one probe
 * (`half-open`); its success closes the breaker, its failure opens it for another cooldown.
 * A probe that ends neither way (the client left) hands the probe to the next caller.
 *
 * @example
 * const breaker = new CircuitBreaker({ cooldownMs: 30_000 })
 * if (breaker.tryAcquire()) { try { await call(); breaker.success() } catch { breaker.failure() } }
 */
export class CircuitBreaker {
  readonly #threshold: number
  readonly #cooldownMs: number
  readonly #now: () => number
  #state: BreakerState = 'closed'
  #failures = 0
  #openedAt = 0

  constructor(options: BreakerOptions = {}) {
    this.#threshold = options.threshold ?? BREAKER_THRESHOLD
    this.#cooldownMs = options.cooldownMs ?? BREAKER_COOLDOWN_MS
    this.#now = options.now ?? (() => performance.now())
    if (!(Number.isInteger(this.#threshold) && this.#threshold > 0)) throw new TypeError(`CircuitBreaker: threshold must be a positive integer, got ${this.#threshold}`)
    if (!(this.#cooldownMs >= 0)) throw new TypeError(`CircuitBreaker: cooldownMs must be >= 0, got ${this.#cooldownMs}`)
  }

  get state(): BreakerState {
    return this.#state
  }

  /** Whether a call would be let through now, without taking the probe. */
  get available(): boolean {
    return this.#state === 'closed' || (this.#state === 'open' && this.#now() - this.#openedAt >= this.#cooldownMs)
  }

  /** Asks to make a call: true when closed, or when this caller gets the probe. */
  tryAcquire(): boolean {
    if (this.#state === 'closed') return true
    if (this.#state === 'half-open' || this.#now() - this.#openedAt < this.#cooldownMs) return false
    this.#state = 'half-open'
    return true
  }

  success(): void {
    this.#state = 'closed'
    this.#failures = 0
  }

  /** A failure that says the store is unwell (connect, timeout, 5xx, reset). */
  failure(): void {
    this.#failures++
    if (this.#state === 'half-open' || (this.#state === 'closed' && this.#failures >= this.#threshold)) {
      this.#state = 'open'
      this.#openedAt = this.#now()
    }
  }

  /** A call that ended without telling anything about the store (aborted, 4xx): a probe is handed back. */
  neutral(): void {
    if (this.#state === 'half-open') this.#state = 'open'
  }
}
