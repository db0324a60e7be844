import { cacheKey } from '../cache/keys.ts'
import type { Cache } from '../cache/types.ts'
import type { Logger } from '../log.ts'
import type { Telemetry } from '../metrics.ts'
import { type FreshnessPolicy, IMMUTABLE } from './freshness.ts'
import { KnownObjects } from './known.ts'
import { NegativeCache } from './negative.ts'
import { createPurge } from './purge.ts'
import { createReadPath } from './read.ts'
import { Verifier } from './verify.ts'
import type { ObjectService } from './types.ts'
import { createWritePath } from './write.ts'

export type { FreshnessStatus, ObjectService, ObjectSource, OpenObject, WriteOptions } from './types.ts'
export { type FreshnessPolicy, IMMUTABLE, policyOf } from './freshness.ts'

export interface ObjectServiceOptions {
  cache: Cache
  /** Larger objects are not cached whole: streamed through, or cached page by page. */
  maxObjectSize: number
  /** PUT bodies larger than this are refused (413). */
  maxUploadSize: number
  /** Page size for large objects; 0 disables page caching. */
  pageSize?: number
  /** Pages fetched ahead of the one being sent (default 2). */
  readAhead?: number
  telemetry: Telemetry
  logger: Logger
  /** Clock (ms since epoch) for the age of hits: the one the cache stamps entries with. Default `Date.now`. */
  now?: () => number
  /** Freshness per store id (freshness.ts `policyOf`); a store not listed is immutable. */
  freshness?: ReadonlyMap<string, FreshnessPolicy>
  /** Share of hits compared with the store in the background (0–1). */
  verifySampleRate?: number
  /** Every read from the store; hits only compared with it. */
  verifyOnly?: boolean
  /** For verify sampling (tests). Default `Math.random`. */
  random?: () => number
}

/**
 * The read and write paths: cache lookups, singleflight fills, page-aligned reads of large
 * objects, write-through PUT. Knows nothing of HTTP or auth; throws domain errors. The stores
 * it is given carry their own deadline and metrics (stores/registry.ts `decorateStore`).
 *
 * @example
 * const objects = createObjectService({ cache, maxObjectSize: 64 * 2 ** 20, maxUploadSize: 5 * 2 ** 30, telemetry, logger })
 * const object = await objects.open(store, 'photos/a.jpg', false)
 */
export function createObjectService(options: ObjectServiceOptions): ObjectService {
  const { cache, maxObjectSize, telemetry } = options
  const pageSize = options.pageSize ?? 0
  const now = options.now ?? Date.now
  const known = new KnownObjects(cache, (meta) => pageSize > 0 && meta.size > maxObjectSize, now)
  const policies = options.freshness ?? new Map<string, FreshnessPolicy>()
  const policyFor = (storeId: string) => policies.get(storeId) ?? IMMUTABLE
  const revalidates = [...policies.values()].some((policy) => policy.revalidateAfter !== Infinity)
  const negative = new NegativeCache({ now })
  let invalidate: (ck: string) => Promise<void> = async () => {}
  const verifier = new Verifier({ rate: options.verifySampleRate ?? 0, random: options.random, telemetry, logger: options.logger, drop: (ck) => invalidate(ck) })
  const reads = createReadPath({
    cache,
    known,
    maxObjectSize,
    pageSize,
    readAhead: options.readAhead ?? 2,
    telemetry,
    logger: options.logger,
    now,
    policyFor,
    revalidates,
    negative,
    verifier,
    verifyOnly: options.verifyOnly ?? false,
  })
  invalidate = reads.invalidate
  const writes = createWritePath({ cache, known, invalidate: reads.invalidate, maxObjectSize, maxUploadSize: options.maxUploadSize })
  const purge = createPurge({ cache, known, negative, detach: reads.detach, detachPrefix: reads.detachPrefix })
  return {
    open: reads.open,
    openInMemory: reads.openInMemory,
    head: reads.head,
    prefetch: reads.prefetch,
    write: writes.write,
    invalidate: (store, key) => {
      const ck = cacheKey(store.id, key)
      // A PUT of the same key still running must not cache over this write.
      writes.touched(ck)
      return reads.invalidate(ck)
    },
    inflightFills: reads.inflightFills,
    purge: async (bucket, what) => {
      const dropped = await purge(bucket, what)
      telemetry.purged(dropped)
      return dropped
    },
    settled: reads.settled,
  }
}
