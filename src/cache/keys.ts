/**
 * The cache's key layout, in one place. Bucket ids cannot contain NUL, and object keys are
 * validated to contain none (stores/key.ts), so NUL separates parts without any collision.
 *
 * - `bucket\0key`: a whole object;
 * - `bucket\0key\0meta`: the metadata record of a large (paged) object;
 * - `bucket\0key\0page:N`: page N of a large object.
 *
 * So every entry of an object starts with its `cacheKey`, and every entry of the objects
 * whose keys start with `p` starts with `cacheKey(bucket, p)`: purge enumerates by prefix.
 */

/** The cache key for an object. */
export function cacheKey(bucketId: string, key: string): string {
  return `${bucketId}\u0000${key}`
}

/** The cache key of a large object's metadata record. */
export function metaRecordKey(ck: string): string {
  return `${ck}\u0000meta`
}

/** The cache key of page `index` of a large object. */
export function pageKey(ck: string, index: number): string {
  return `${pagesPrefix(ck)}${index}`
}

/** What every page key of the object `ck` (and nothing else) starts with: to list its cached pages. */
export function pagesPrefix(ck: string): string {
  return `${ck}\u0000page:`
}

/**
 * The singleflight key of a page fill: shared only by readers of the same object version, so
 * after a PUT a reader of the new version never joins a fill of the old one still in flight.
 */
export function pageFlightKey(pk: string, version: string): string {
  return `${pk}\u0000${version}`
}

/**
 * The singleflight key of an object's revalidation (a conditional GET, or a HEAD for a paged
 * object's record): never equal to a fill's key (`ck`) or a page flight's.
 */
export function revalidateFlightKey(ck: string): string {
  return `${ck}\u0000revalidate`
}

/** Whether `key` is one of the entries of the object `ck` (whole, metadata record, pages). */
export function isEntryOf(ck: string, key: string): boolean {
  return key === ck || (key.startsWith(ck) && key.charCodeAt(ck.length) === 0)
}

/** The keys of `keys` that start with `prefix`. */
export function keysWith(keys: Iterable<string>, prefix: string): string[] {
  const found: string[] = []
  for (const key of keys) if (key.startsWith(prefix)) found.push(key)
  return found
}
