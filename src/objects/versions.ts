import type { ObjectMeta } from '../stores/types.ts'

/**
 * Two answers describe the same version of an object: same size, same ETag, and (for stores
 * that send no ETag) the same Last-Modified. Bytes of one version are never stitched to, or
 * served under the headers of, another.
 */
export function sameVersion(a: ObjectMeta, b: ObjectMeta): boolean {
  if (a.size !== b.size || a.etag !== b.etag) return false
  return a.etag !== undefined || a.lastModified?.getTime() === b.lastModified?.getTime()
}
