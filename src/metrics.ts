import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { UpstreamErrorKind } from './errors.ts'
import type { TierStats } from './cache/types.ts'
import type { StoreHealthSnapshot } from './stores/store-health.ts'
import type { ThroughputRates } from './throughput.ts'

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
  /** Stores read through a fallback group (see `with-fallback.ts`), by id. */
  #storeHealth: () => ReadonlyMap<string, StoreHealthSnapshot> = () => new Map()
  #throughput: (() => ThroughputRates) | undefined
  readonly #totals = { authFailures: 0, upstreamOk: 0, upstreamErrors: 0, diskErrors: 0 }

  /**
   * Requests and cache results are counted in plain nested Maps on the hot path and copied
   * into prom-client when scraped: an `inc()` through prom-client cost 2–3% of a 4 KiB hit.
   */
  readonly #requestCounts = new Map<string, Map<string | number, number>>()
  readonly #cacheCounts = new Map<string, Map<string | number, number>>()
  /** Accepted and forbidden credentials by kind, then token id (`''`: a link or the plain bearer_token). */
  readonly #authAccepted = new Map<string, Map<string | number, number>>()
  readonly #authForbidden = new Map<string, Map<string | number, number>>()
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

  /** Hedged GETs per store (see `stores/with-hedge.ts`), read at scrape time like the request counts. */
  readonly #hedges = new Map<string, { sent: number; won: number; thresholdMs: number | undefined }>()

  readonly #connectionsCut = new Counter({ name: 'cachegate_connections_cut_total', help: 'Connections refused or cut by limits (max_connections, slow_upload)', labelNames: ['reason'], registers: [this.registry] })

  /** Freshness (issue 13): revalidations, stale-if-error, negative hits, purges, verify checks. */
  readonly #revalidations = new Counter({ name: 'cachegate_cache_revalidations_total', help: 'Revalidations of cached objects by result (not_modified, changed, missing, error)', labelNames: ['result'], registers: [this.registry] })
  readonly #staleIfError = new Counter({ name: 'cachegate_cache_stale_if_error_total', help: 'Cached copies served because the store failed their revalidation', registers: [this.registry] })
  readonly #negativeHits = new Counter({ name: 'cachegate_cache_negative_hits_total', help: 'Lookups answered 404 from a remembered 404 (cache.negative_ttl)', registers: [this.registry] })
  readonly #purged = new Counter({ name: 'cachegate_cache_purged_entries_total', help: 'Cache entries dropped by /_admin/purge', registers: [this.registry] })
  readonly #verifyChecks = new Counter({ name: 'cachegate_cache_verify_checks_total', help: 'Cached objects compared with the store (verify mode) by result (match, mismatch, error, skipped)', labelNames: ['result'], registers: [this.registry] })
  readonly #verifyMismatches = new Counter({ name: 'cachegate_cache_verify_mismatches_total', help: 'Cached objects that differed from the store (verify mode)', registers: [this.registry] })

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const sources = () => this.#sources
    countedCounter(this.registry, 'cachegate_requests_total', 'HTTP requests by method and status', ['method', 'status'], this.#requestCounts)
    countedCounter(this.registry, 'cachegate_auth_accepted_total', 'Authenticated requests by credential kind and token id (empty: a link or the plain bearer_token)', ['kind', 'token'], this.#authAccepted)
    countedCounter(this.registry, 'cachegate_auth_forbidden_total', 'Authenticated requests refused for scope (403) by credential kind and token id', ['kind', 'token'], this.#authForbidden)
    countedCounter(this.registry, 'cachegate_cache_requests_total', 'Object reads by method and cache result', ['method', 'result'], this.#cacheCounts)
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
    this.#storeHealthGauges()
    this.#registerHedgeMetrics()
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'cachegate_' })
  }

  #storeHealthGauges(): void {
    const health = () => this.#storeHealth()
    const gauge = (name: string, help: string, pick: (s: StoreHealthSnapshot) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['store'],
        registers: [this.registry],
        collect() {
          for (const [store, s] of health()) this.set({ store }, pick(s))
        },
      })
    gauge('cachegate_store_breaker_state', 'Circuit breaker per store read through a fallback group: 0 closed, 1 half-open (probing), 2 open', (s) => BREAKER_VALUES[s.breaker])
    gauge('cachegate_store_error_rate', 'Decaying share of failed reads per store (fallback groups)', (s) => s.errorRate)
    gauge('cachegate_store_mean_latency_seconds', 'Decaying mean time to headers of successful reads per store (fallback groups)', (s) => s.meanLatencyMs / 1000)
    new Counter({
      name: 'cachegate_store_reads_served_total',
      help: 'Reads answered per store of a fallback group (an object or not found)',
      labelNames: ['store'],
      registers: [this.registry],
      collect() {
        this.reset()
        for (const [store, s] of health()) this.inc({ store }, s.served)
      },
    })
  }

  /** The health of the stores read through fallback groups, read at scrape time. */
  attachStoreHealth(source: () => ReadonlyMap<string, StoreHealthSnapshot>): void {
    this.#storeHealth = source
  }

  /** The public listener's bytes per second (server.ts), shown in `/stats` as `throughput`. */
  attachThroughput(source: () => ThroughputRates): void {
    this.#throughput = source
  }

  attach(sources: TelemetrySources): void {
    this.#sources = sources
  }

  request(method: string, status: number): void {
    bump(this.#requestCounts, method, status)
  }

  authFailure(reason: string): void {
    this.#totals.authFailures++
    this.#auth.inc({ reason })
  }

  /** A credential accepted: `kind` presigned or bearer, `tokenId` for an `auth.tokens` entry. */
  authAccepted(kind: string, tokenId: string | undefined): void {
    bump(this.#authAccepted, kind, tokenId ?? '')
  }

  /** An authenticated request refused for its scope (403). */
  authForbidden(kind: string, tokenId: string | undefined): void {
    bump(this.#authForbidden, kind, tokenId ?? '')
  }

  connectionCut(reason: 'max_connections' | 'slow_upload'): void {
    this.#connectionsCut.inc({ reason })
  }

  cacheResult(method: string, result: CacheResult): void {
    bump(this.#cacheCounts, method, result)
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

  hedgeSent(store: string): void {
    this.#hedge(store).sent++
  }

  hedgeWon(store: string): void {
    this.#hedge(store).won++
  }

  hedgeThreshold(store: string, ms: number | undefined): void {
    this.#hedge(store).thresholdMs = ms
  }

  #hedge(store: string) {
    let counts = this.#hedges.get(store)
    if (!counts) this.#hedges.set(store, (counts = { sent: 0, won: 0, thresholdMs: undefined }))
    return counts
  }

  #registerHedgeMetrics(): void {
    const hedges = this.#hedges
    const registers = [this.registry]
    const counter = (name: string, help: string, pick: 'sent' | 'won') =>
      new Counter({
        name,
        help,
        labelNames: ['store'],
        registers,
        collect() {
          this.reset()
          for (const [store, counts] of hedges) this.inc({ store }, counts[pick])
        },
      })
    counter('cachegate_upstream_hedges_total', 'Hedged GETs sent (a second GET for one that was slow to answer)', 'sent')
    counter('cachegate_upstream_hedges_won_total', 'Hedged GETs that answered before the GET they hedged', 'won')
    new Gauge({
      name: 'cachegate_upstream_hedge_threshold_seconds',
      help: 'Time without response headers after which a GET is hedged (absent until learned)',
      labelNames: ['store'],
      registers,
      collect() {
        this.reset()
        for (const [store, { thresholdMs }] of hedges) if (thresholdMs !== undefined) this.set({ store }, thresholdMs / 1000)
      },
    })
  }

  revalidation(result: 'not_modified' | 'changed' | 'missing' | 'error'): void {
    this.#revalidations.inc({ result })
  }

  staleIfError(): void {
    this.#staleIfError.inc()
  }

  negativeHit(): void {
    this.#negativeHits.inc()
  }

  purged(entries: number): void {
    this.#purged.inc(entries)
  }

  verifyCheck(result: 'match' | 'mismatch' | 'error' | 'skipped'): void {
    this.#verifyChecks.inc({ result })
    if (result === 'mismatch') this.#verifyMismatches.inc()
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
      requests: total(this.#requestCounts),
      throughput: this.#throughput?.() ?? null,
      auth_failures: t.authFailures,
      cache: { hits: total(this.#cacheCounts, 'hit'), misses: total(this.#cacheCounts, 'miss'), inflight_joins: total(this.#cacheCounts, 'inflight'), tiers, inflight_fills: this.#sources.inflightFills(), disk_errors: t.diskErrors },
      upstream: {
        ok: t.upstreamOk,
        errors: t.upstreamErrors,
        hedges: Object.fromEntries([...this.#hedges].map(([store, h]) => [store, { sent: h.sent, won: h.won, threshold_ms: h.thresholdMs ?? null }])),
      },
      stores: Object.fromEntries(
        [...this.#storeHealth()].map(([id, s]) => [id, { breaker: s.breaker, error_rate: s.errorRate, mean_latency_ms: s.meanLatencyMs, served: s.served }]),
      ),
    }
  }
}

const BREAKER_VALUES = { closed: 0, 'half-open': 1, open: 2 } as const

/** The sum over every first label of the counts for `b` (or of all counts). */
function total(counts: Map<string, Map<string | number, number>>, b?: string | number): number {
  let sum = 0
  for (const byB of counts.values()) {
    if (b !== undefined) sum += byB.get(b) ?? 0
    else for (const n of byB.values()) sum += n
  }
  return sum
}

function bump(counts: Map<string, Map<string | number, number>>, a: string, b: string | number): void {
  let byB = counts.get(a)
  if (!byB) counts.set(a, (byB = new Map()))
  byB.set(b, (byB.get(b) ?? 0) + 1)
}

/** A two-label counter whose values live in `counts` and are read at scrape time. */
function countedCounter(registry: Registry, name: string, help: string, labelNames: [string, string], counts: Map<string, Map<string | number, number>>): Counter<string> {
  return new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset()
      for (const [a, byB] of counts) for (const [b, n] of byB) this.inc({ [labelNames[0]]: a, [labelNames[1]]: String(b) }, n)
    },
  })
}
