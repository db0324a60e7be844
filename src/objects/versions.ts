import type { ObjectMeta } from '../stores/types.ts'

/**
 * What tells versions of an object apart: its size and ETag, or (for stores that send no
 * ETag) its size and Last-Modified. Bytes of one version are never stitched to, or served
 * under the headers of, another; page fills are shared only within one version.
 */
export function versionOf(meta: ObjectMeta): string {
  return meta.etag !== undefined ? `${meta.size}\u0000${meta.etag}` : `${meta.size}\u0000date:${meta.lastModified?.getTime() ?? ''}`
}

/** Two answers describe the same version of an object (see `versionOf`). */
export function sameVersion(a: ObjectMeta, b: ObjectMeta): boolean {
  return versionOf(a) === versionOf(b)
}
