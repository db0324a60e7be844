import type { Config } from '../config/schema.ts'
import { createFsStore } from './fs.ts'
import type { Store } from './types.ts'
import { type StoreHealthOptions, StoreHealth } from './store-health.ts'
import { withDeadline } from './with-deadline.ts'
import { withFallback } from './with-fallback.ts'
import { type HedgeMetrics, withHedge } from './with-hedge.ts'
import { type UpstreamMetrics, withMetrics } from './with-metrics.ts'

/**
 * One store per configured bucket id, created once at start-up. The S3 and Azure SDKs are
 * imported only when a store of that type is configured: together they add tens of MiB of
 * heap, which every full GC has to mark (measured: a gateway serving 1 MiB disk hits spent
 * 16% of its time in GC with both loaded).
 */
export async function createStores(config: Config): Promise<Map<string, Store>> {
  const stores = new Map<string, Store>()
  for (const [id, store] of Object.entries(config.stores)) {
    switch (store.type) {
      case 'fs':
        stores.set(id, createFsStore({ id, root: store.root }))
        break
      case 's3': {
        const { createS3Store } = await import('./s3.ts')
        stores.set(
          id,
          createS3Store({
            id,
            bucket: store.bucket,
            region: store.region,
            accessKey: store.access_key,
            secretKey: store.secret_key,
            endpoint: store.endpoint,
            allowHttp: store.allow_http,
          }),
        )
        break
      }
      case 'azure': {
        const { createAzureStore } = await import('./azure.ts')
        stores.set(id, createAzureStore({ id, container: store.container, connectionString: store.connection_string }))
        break
      }
    }
  }
  return stores
}

export interface StoreDecorations {
  /** `upstream.timeout_seconds` in ms (see `with-deadline.ts`). */
  timeoutMs: number
  /** Counts and times every store call (see `with-metrics.ts`); omit to leave calls uncounted. */
  telemetry?: UpstreamMetrics & HedgeMetrics
  /** `upstream.hedge_*` (see `with-hedge.ts`); omit or quantile 0: no hedging. */
  hedge?: { quantile: number; minSamples: number; maxRatio: number }
}

/**
 * Wraps a store once, at start-up: `withMetrics(withDeadline(withHedge(store)))`.
 * - Hedging innermost, so the deadline bounds the whole call as the client sees it:
 *   `upstream.timeout_seconds` keeps meaning "the client waits this long for a store", a
 *   hedge sent at the threshold gets what is left of it, and the deadline's abort reaches
 *   both attempts through the caller's signal. The deadline's body watch is on the winner.
 * - Metrics outside the deadline, so a call cut by it is counted as kind `timeout` with the
 *   time it took, and a hedged GET is counted once, as the client saw it (hedges have their
 *   own counters).
 *
 * @example
 * const store = decorateStore(createFsStore({ id: 'local', root }), { timeoutMs: 30_000, telemetry })
 */
export function decorateStore(store: Store, { timeoutMs, telemetry, hedge }: StoreDecorations): Store {
  const hedged = hedge && hedge.quantile > 0 ? withHedge(store, { ...hedge, telemetry }) : store
  const timed = withDeadline(hedged, { timeoutMs })
  return telemetry ? withMetrics(timed, telemetry) : timed
}

/** `decorateStore` over every store of a registry, keeping the ids. */
export function decorateStores(stores: ReadonlyMap<string, Store>, decorations: StoreDecorations): Map<string, Store> {
  return new Map([...stores].map(([id, store]) => [id, decorateStore(store, decorations)]))
}

/**
 * The buckets with a `fallback` list wrapped in `withFallback` over the (already decorated)
 * stores they read from; the others as they are. One `StoreHealth` (breaker, error rate,
 * latency) per underlying store id, shared by every bucket that reads from it. Fallback lists
 * are not transitive: a bucket reads from its own store and the stores it lists, no further.
 *
 * @example
 * const { stores, health } = withFallbacks(decorateStores(await createStores(config), decorations), config.stores)
 */
export function withFallbacks(
  stores: ReadonlyMap<string, Store>,
  configured: Readonly<Record<string, { fallback?: readonly string[] }>>,
  options: StoreHealthOptions = {},
): { stores: Map<string, Store>; health: Map<string, StoreHealth> } {
  const health = new Map<string, StoreHealth>()
  const member = (id: string) => {
    const store = stores.get(id)
    if (!store) throw new Error(`fallback names store "${id}", which is not configured`)
    let h = health.get(id)
    if (!h) health.set(id, (h = new StoreHealth(id, options)))
    return { store, health: h }
  }
  const wrapped = new Map<string, Store>()
  for (const [id, store] of stores) {
    const fallback = configured[id]?.fallback ?? []
    wrapped.set(id, fallback.length > 0 ? withFallback(member(id), fallback.map(member)) : store)
  }
  return { stores: wrapped, health }
}
