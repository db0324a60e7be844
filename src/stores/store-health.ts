import { type BreakerOptions, type BreakerState, CircuitBreaker } from './breaker.ts'

export interface StoreHealthOptions extends BreakerOptions {
  /** Samples lose half their weight in this many ms (default 10 s): the error rate and latency follow the store's recent behaviour. */
  halfLifeMs?: number
}

export interface StoreHealthSnapshot {
  breaker: BreakerState
  /** Decaying share of failed calls, 0–1. */
  errorRate: number
  /** Decaying mean time to headers of successful calls, in ms. */
  meanLatencyMs: number
  /** Reads this store answered (an object or "not found"). */
  served: number
}

/**
 * What the fallback wrapper knows about one underlying store: its breaker, a decaying error
 * rate and mean latency (exponential decay by elapsed time, so a store that failed a minute
 * ago is not judged by it now), and how many reads it served. One per store id, shared by
 * every bucket that reads from that store.
 */
export class StoreHealth {
  readonly id: string
  readonly breaker: CircuitBreaker
  readonly #now: () => number
  readonly #tauMs: number
  #at: number
  #calls = 0
  #errors = 0
  #okWeight = 0
  #latencySum = 0
  #served = 0

  constructor(id: string, options: StoreHealthOptions = {}) {
    this.id = id
    this.#now = options.now ?? (() => performance.now())
    this.#tauMs = (options.halfLifeMs ?? 10_000) / Math.LN2
    this.#at = this.#now()
    this.breaker = new CircuitBreaker({ ...options, now: this.#now })
  }

  /** Ages every sum to now. */
  #decay(): void {
    const now = this.#now()
    const factor = Math.exp(-Math.max(0, now - this.#at) / this.#tauMs)
    this.#at = now
    this.#calls *= factor
    this.#errors *= factor
    this.#okWeight *= factor
    this.#latencySum *= factor
  }

  /** A call answered (an object, "not found" or "not modified") after `latencyMs`. */
  ok(latencyMs: number): void {
    this.#decay()
    this.#calls++
    this.#okWeight++
    this.#latencySum += latencyMs
    this.#served++
    this.breaker.success()
  }

  /** A call failed; `counts` when the failure says the store is unwell (it feeds the breaker). */
  failed(counts: boolean): void {
    this.#decay()
    if (counts) {
      this.#calls++
      this.#errors++
      this.breaker.failure()
    } else this.breaker.neutral()
  }

  get errorRate(): number {
    this.#decay()
    // Over at least one call's weight: a store idle since its failures is forgiven as they fade.
    return this.#errors / Math.max(1, this.#calls)
  }

  get meanLatencyMs(): number {
    this.#decay()
    return this.#okWeight > 1e-9 ? this.#latencySum / this.#okWeight : 0
  }

  /** Cachey's ranking score (lower is better) for this store at position `index` of a list. */
  score(index: number): number {
    return index * 2000 + this.errorRate * 100_000 + (this.meanLatencyMs * 1000) / 100
  }

  snapshot(): StoreHealthSnapshot {
    return { breaker: this.breaker.state, errorRate: this.errorRate, meanLatencyMs: this.meanLatencyMs, served: this.#served }
  }
}
