import { cacheKey } from '../cache/keys.ts'
import type { Cache } from '../cache/types.ts'
import type { Logger } from '../log.ts'
import type { Telemetry } from '../metrics.ts'
import { KnownObjects } from './known.ts'
import { createReadPath } from './read.ts'
import type { ObjectService } from './types.ts'
import { createWritePath } from './write.ts'

export type { ObjectService, ObjectSource, OpenObject, WriteOptions } from './types.ts'

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
  const known = new KnownObjects(cache, (meta) => pageSize > 0 && meta.size > maxObjectSize)
  const reads = createReadPath({ cache, known, maxObjectSize, pageSize, readAhead: options.readAhead ?? 2, telemetry, logger: options.logger })
  const writes = createWritePath({ cache, known, invalidate: reads.invalidate, maxObjectSize, maxUploadSize: options.maxUploadSize })
  return {
    open: reads.open,
    openInMemory: reads.openInMemory,
    head: reads.head,
    prefetch: reads.prefetch,
    write: writes.write,
    invalidate: (store, key) => reads.invalidate(cacheKey(store.id, key)),
    inflightFills: reads.inflightFills,
  }
}
