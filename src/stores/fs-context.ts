import type { FsRoot } from './fs-root.ts'
import type { ListEntry, ObjectMeta } from './types.ts'

/** What `fs.ts` shares with the modules that add list, copy, delete and multipart to it. */
export interface FsContext {
  id: string
  root: FsRoot
  /** Rethrows a domain error; wraps anything else in an UpstreamError without disk paths. */
  fail(op: string, key: string, error: unknown): never
  metaOf(key: string, sidecar: string, stat: { size: number; mtimeMs: number; ino: number }): Promise<ObjectMeta>
  head(key: string): Promise<ObjectMeta | null>
  /** A fresh temp file path inside the root. */
  tmpFile(): Promise<string>
  /** Moves a finished temp file into place as `key`, with its sidecar. */
  install(key: string, tmp: string, contentType: string, ifNoneMatch?: '*'): Promise<ObjectMeta>
}

/** Size, ETag and Last-Modified of a file, as `head` and `list` answer them. */
export function validatorsOf(stat: { size: number; mtimeMs: number; ino: number }): Omit<ListEntry, 'key'> {
  return {
    size: stat.size,
    // Same recipe as nginx's strong ETag: size and modification time, here with the inode too.
    etag: `"${stat.ino.toString(16)}-${stat.size.toString(16)}-${Math.floor(stat.mtimeMs * 1000).toString(16)}"`,
    lastModified: new Date(Math.floor(stat.mtimeMs / 1000) * 1000),
  }
}
