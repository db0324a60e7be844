import type { Logger } from '../../log.ts'
import type { ObjectMeta } from '../../stores/types.ts'
import type { Cache } from '../types.ts'
import type { DiskFs, DiskOp } from './fs.ts'

export interface DiskCacheOptions {
  /** Root directory; created if missing. Owned by this tier: one process per directory. */
  path: string
  /** Bound on the bytes the entry files take (header + body, rounded up to 4 KiB blocks). */
  maxBytes: number
  logger?: Logger
  /** Every disk error the tier absorbs (wire to `Telemetry.diskError`). */
  onError?: (op: DiskOp, error: unknown) => void
  fs?: DiskFs
  /** Clock (ms since epoch) for the write cool-down and each entry's stored-at time. Default `Date.now`. */
  now?: () => number
}

export interface DiskCache extends Cache {
  /** Counts a use of `key` towards keeping it, without any I/O (the hybrid's memory hits). */
  touch(key: string): void
  /** Waits for background unlinks and writes. The directory stays valid for a later open. */
  close(): Promise<void>
}

/** One entry in the index: where its file is and what it holds. */
export interface Entry {
  key: string
  file: string
  meta: ObjectMeta
  /** Where the body starts in the file. */
  offset: number
  fileSize: number
  sha256: string
  written: number
  /** When the object was stored (ms since epoch); see `Header.storedAt`. */
  storedAt: number
  /** The body has been hashed since this process opened the tier (or was written by it). */
  verified: boolean
  verifying?: Promise<void>
}
