import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { UpstreamErrorKind } from './errors.ts'
import type { TierStats } from './cache/types.ts'

export type CacheResult = 'hit' | 'miss' | 'inflight'

export interface TelemetrySources {
  tiers(): Record<string, TierStats>
  inflightFills(): number
}

/**
 * Counters behind both `/stats` (JSON) and `/metrics` (Prometheus text). One registry per
 * app, so tests can run several apps in one process without clashing.
 */
export class Telemetry {
  readonly registry = new Registry()
  readonly #started = Date.now()
  #sources: TelemetrySources = { tiers: () => ({}), inflightFills: () => 0 }
  readonly #totals = { requests: 0, authFailures: 0, hits: 0, misses: 0, inflightJoins: 0, upstreamOk: 0, upstreamErrors: 0, diskErrors: 0 }

  readonly #requests = new Counter({ name: 'cachegate_requests_total', help: 'HTTP requests by method and status', labelNames: ['method', 'status'], registers: [this.registry] })
  readonly #cache = new Counter({ name: 'cachegate_cache_requests_total', help: 'Object reads by method and cache result', labelNames: ['method', 'result'], registers: [this.registry] })
  readonly #auth = new Counter({ name: 'cachegate_auth_failures_total', help: 'Rejected requests by reason', labelNames: ['reason'], registers: [this.registry] })
  readonly #upstream = new Counter({ name: 'cachegate_upstream_requests_total', help: 'Store calls by store, operation and outcome', labelNames: ['store', 'op', 'outcome'], registers: [this.registry] })
  readonly #upstreamErrors = new Counter({ name: 'cachegate_upstream_errors_total', help: 'Store failures by store and kind', labelNames: ['store', 'kind'], registers: [this.registry] })
  readonly #latency = new Histogram({
    name: 'cachegate_upstream_duration_seconds',
    help: 'Store call latency until the response headers (time to first byte)',
    labelNames: ['store', 'op'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })
  readonly #diskErrors = new Counter({ name: 'cachegate_cache_disk_errors_total', help: 'Disk tier I/O errors (the tier degrades, requests still succeed)', labelNames: ['op'], registers: [this.registry] })

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const sources = () => this.#sources
    const tierGauge = (name: string, help: string, pick: (s: TierStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['tier'],
        registers: [this.registry],
        collect() {
          for (const [tier, stats] of Object.entries(sources().tiers())) this.set({ tier }, pick(stats))
        },
      })
    tierGauge('cachegate_cache_bytes', 'Bytes held per cache tier', (s) => s.bytes)
    tierGauge('cachegate_cache_entries', 'Entries per cache tier', (s) => s.entries)
    tierGauge('cachegate_cache_max_bytes', 'Configured bound per cache tier', (s) => s.maxBytes)
    new Gauge({
      name: 'cachegate_inflight_fills',
      help: 'Upstream fills in progress (singleflight)',
      registers: [this.registry],
      collect() {
        this.set(sources().inflightFills())
      },
    })
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'cachegate_' })
  }

  attach(sources: TelemetrySources): void {
    this.#sources = sources
  }

  /**
   * Bound label children per counter, found with two Map lookups and no string building, so
   * the hot path skips prom-client's per-call label hashing.
   */
  readonly #bound = new Map<Counter<string>, Map<string, Map<string | number, { inc(): void }>>>()
  #child(counter: Counter<string>, a: string, b: string | number): { inc(): void } {
    let byA = this.#bound.get(counter)
    if (!byA) this.#bound.set(counter, (byA = new Map()))
    let byB = byA.get(a)
    if (!byB) byA.set(a, (byB = new Map()))
    let child = byB.get(b)
    if (!child) byB.set(b, (child = counter.labels(a, String(b))))
    return child
  }

  request(method: string, status: number): void {
    this.#totals.requests++
    this.#child(this.#requests, method, status).inc()
  }

  authFailure(reason: string): void {
    this.#totals.authFailures++
    this.#auth.inc({ reason })
  }

  cacheResult(method: string, result: CacheResult): void {
    if (result === 'hit') this.#totals.hits++
    else if (result === 'miss') this.#totals.misses++
    else this.#totals.inflightJoins++
    this.#child(this.#cache, method, result).inc()
  }

  upstreamOk(store: string, op: string, seconds: number): void {
    this.#totals.upstreamOk++
    this.#upstream.inc({ store, op, outcome: 'ok' })
    this.#latency.observe({ store, op }, seconds)
  }

  upstreamError(store: string, op: string, kind: UpstreamErrorKind): void {
    this.#totals.upstreamErrors++
    this.#upstream.inc({ store, op, outcome: 'error' })
    this.#upstreamErrors.inc({ store, kind })
  }

  diskError(op: string): void {
    this.#totals.diskErrors++
    this.#diskErrors.inc({ op })
  }

  /** The `/stats` document: real values, read at call time. */
  snapshot() {
    const t = this.#totals
    const tiers = Object.fromEntries(
      Object.entries(this.#sources.tiers()).map(([tier, s]) => [tier, { entries: s.entries, bytes: s.bytes, max_bytes: s.maxBytes }]),
    )
    return {
      uptime_seconds: Math.round((Date.now() - this.#started) / 1000),
      requests: t.requests,
      auth_failures: t.authFailures,
      cache: { hits: t.hits, misses: t.misses, inflight_joins: t.inflightJoins, tiers, inflight_fills: this.#sources.inflightFills(), disk_errors: t.diskErrors },
      upstream: { ok: t.upstreamOk, errors: t.upstreamErrors },
    }
  }
}
