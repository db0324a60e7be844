/**
 * A decaying latency histogram: the quantile estimate behind hedged reads (`with-hedge.ts`).
 *
 * Why this sketch: a fixed log-bucketed histogram (HdrHistogram-lite) has a known, bounded
 * error — a quantile is reported as the upper edge of its bucket, so it is never below the true
 * value and at most one bucket ratio (5%) above it — constant memory (≈270 numbers) and O(1)
 * inserts. Decay is per sample, as Cachey's (alpha 0.015: a sample's weight halves every ~46
 * samples), so a store that got slower is noticed after tens of requests whatever its rate.
 * It is done with forward decay (Cormode et al., "Forward Decay", ICDE 2009): instead of
 * multiplying every bucket by (1 - alpha) per sample, each new sample is added with a weight
 * that grows by 1 / (1 - alpha), and the counts are rescaled when that weight gets large.
 * A quantile walks the buckets, so it is cached and refreshed at most once per `refreshMs`.
 */

/** Bucket `i` holds values in (MIN_MS * RATIO^(i-1), MIN_MS * RATIO^i]; bucket 0 all ≤ MIN_MS. */
const MIN_MS = 0.1
const MAX_MS = 60_000
const RATIO = 1.05
const LOG_RATIO = Math.log(RATIO)
const BUCKETS = Math.ceil(Math.log(MAX_MS / MIN_MS) / LOG_RATIO) + 1
/** Rescale the counts before the growing sample weight can overflow. */
const RESCALE_AT = 1e100

export interface LatencySketchOptions {
  /** Weight lost by every older sample per new sample (default 0.015, as Cachey). */
  alpha?: number
  /** A quantile is recomputed at most this often (default 1000 ms). */
  refreshMs?: number
  /** The clock for `refreshMs`, in ms (default `performance.now`). */
  now?: () => number
}

/** The upper edge of bucket `i`, in ms. */
function upperEdge(i: number): number {
  return Math.min(MAX_MS, MIN_MS * RATIO ** i)
}

/**
 * @example
 * const sketch = new LatencySketch()
 * sketch.record(12.5) // ms to response headers
 * sketch.quantile(0.99) // ≈ the p99 of recent samples, within 5%; undefined while empty
 */
export class LatencySketch {
  /** The relative resolution of a reported quantile (5%). */
  static readonly RESOLUTION = RATIO - 1
  readonly #counts = new Float64Array(BUCKETS)
  readonly #growth: number
  readonly #refreshMs: number
  readonly #now: () => number
  #weight = 1
  #total = 0
  #samples = 0
  readonly #snapshot = new Map<number, number>()
  #snapshotAt = -Infinity

  constructor(options: LatencySketchOptions = {}) {
    const { alpha = 0.015, refreshMs = 1000, now = () => performance.now() } = options
    if (!(alpha > 0 && alpha < 1)) throw new TypeError(`LatencySketch: alpha must be in (0, 1), got ${alpha}`)
    if (!(refreshMs >= 0)) throw new TypeError(`LatencySketch: refreshMs must be ≥ 0, got ${refreshMs}`)
    this.#growth = 1 / (1 - alpha)
    this.#refreshMs = refreshMs
    this.#now = now
  }

  /** Samples recorded so far (not decayed): how much the estimate is worth. */
  get samples(): number {
    return this.#samples
  }

  record(ms: number): void {
    if (!(ms >= 0)) return
    const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_RATIO - 1e-9))
    this.#counts[i]! += this.#weight
    this.#total += this.#weight
    this.#samples++
    this.#weight *= this.#growth
    if (this.#weight > RESCALE_AT) {
      // Same proportions, smaller numbers: quantiles only depend on ratios of weights.
      const scale = 1 / this.#weight
      for (let j = 0; j < BUCKETS; j++) this.#counts[j]! *= scale
      this.#total *= scale
      this.#weight = 1
    }
  }

  /**
   * The smallest bucket edge with at least a fraction `q` of the decayed weight at or below it
   * (ms), as of the last refresh; undefined before any sample.
   */
  quantile(q: number): number | undefined {
    if (this.#total === 0) return undefined
    const now = this.#now()
    if (now - this.#snapshotAt >= this.#refreshMs) {
      this.#snapshot.clear()
      this.#snapshotAt = now
    }
    let value = this.#snapshot.get(q)
    if (value === undefined) {
      value = this.#compute(q)
      this.#snapshot.set(q, value)
    }
    return value
  }

  #compute(q: number): number {
    // A hair under q * total, so rounding in the running sum never skips the right bucket.
    const target = q * this.#total * (1 - 1e-12)
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!
      if (seen >= target && seen > 0) return upperEdge(i)
    }
    return MAX_MS
  }
}
