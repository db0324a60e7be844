/**
 * The disk tier: whole objects in files, bounded in bytes, evicted by S3-FIFO, rebuilt from
 * its directory on open. This module holds the index and the `Cache` methods; the file format
 * (format.ts), recovery (recover.ts), verified reads (read.ts, verify.ts) and the atomic write
 * with its breaker (writer.ts) are each in their own module.
 */
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import type { ObjectMeta } from '../../stores/types.ts'
import { byteLength } from '../bytes.ts'
import { keysWith } from '../keys.ts'
import { S3FifoCache } from '../s3fifo.ts'
import type { CacheHit, SetOptions, TierStats } from '../types.ts'
import { type Header, MAX_HEADER_BYTES, PREFIX_BYTES, charge, encodeHeader, encodedLength, entryPath, headerOf, storedAtOf } from './format.ts'
import { nodeFs } from './fs.ts'
import { Housekeeper } from './housekeeping.ts'
import { type ReadContext, openBody } from './read.ts'
import { recoverEntries } from './recover.ts'
import type { DiskCache, DiskCacheOptions, Entry } from './types.ts'
import { digestOf } from './verify.ts'
import { AtomicWriter } from './writer.ts'

export { type DiskFs, type DiskOp, nodeFs } from './fs.ts'
export type { DiskCache, DiskCacheOptions } from './types.ts'
export { ChecksumError } from './verify.ts'

/**
 * Opens the disk tier at `options.path`. Writes are atomic (temp file in the same directory,
 * fsync, rename), so a crash leaves either the old state or the complete new entry.
 *
 * Async factory: resolves once the index is rebuilt (headers read, temp files and torn or
 * unreadable entries deleted), so the gateway serves recovered entries from its first request.
 * Checksums are verified lazily, on the first read of each recovered entry (see read.ts).
 *
 * Disk errors never reach the caller: `set` resolves false, `get` resolves undefined, the
 * error goes to `onError` and the log. After 3 write failures in a row the tier stops writing
 * for 30 s (memory-only), then tries again.
 *
 * @example
 * const disk = await openDiskCache({ path: '/var/lib/cachegate/cache', maxBytes: 10 * 2 ** 30,
 *   onError: (op) => telemetry.diskError(op) })
 */
export async function openDiskCache(options: DiskCacheOptions): Promise<DiskCache> {
  const { maxBytes, logger } = options
  if (typeof options.path !== 'string' || options.path === '') throw new TypeError('path must be a non-empty string')
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new TypeError('maxBytes must be a positive integer')
  const root = path.resolve(options.path)
  const fs = options.fs ?? nodeFs
  const now = options.now ?? Date.now
  const upkeep = new Housekeeper(fs, logger, options.onError)
  const writer = new AtomicWriter(fs, now, logger)
  const index = new S3FifoCache<string, Entry>({ maxBytes, onEvict: (_key, entry) => upkeep.doom(entry.file) })
  /** The write each key is waiting for; a delete or a newer set makes an older write moot. */
  const pending = new Map<string, object>()

  function forget(key: string): Promise<void> {
    index.delete(key)
    return upkeep.reap()
  }

  const reads: ReadContext = {
    fs,
    track: (promise) => upkeep.track(promise),
    fail(op, error, key, entry) {
      if (index.peek(key) !== entry) return Promise.resolve()
      upkeep.report(op, error, { file: entry.file })
      return forget(key)
    },
  }

  /** The entry a write of `meta` would create, without its digest; no I/O, no hashing. */
  function plan(key: string, meta: ObjectMeta, options: SetOptions = {}): { entry: Omit<Entry, 'sha256'>; header: Omit<Header, 'sha256'> } {
    const written = now()
    const header = headerOf(key, meta, written, options.storedAt ?? written)
    const offset = encodedLength(header)
    const file = entryPath(root, key, randomBytes(6).toString('hex'))
    return { header, entry: { key, file, meta: { ...meta }, offset, fileSize: offset + meta.size, written, storedAt: storedAtOf(header), verified: true } }
  }

  for (const entry of await recoverEntries(root, fs, upkeep)) index.set(entry.key, entry, charge(entry.fileSize))
  await upkeep.reap()
  logger?.info('disk cache ready', { path: root, entries: index.size, bytes: index.bytes, max_bytes: maxBytes })

  return {
    async get(key): Promise<CacheHit | undefined> {
      const entry = index.get(key)
      if (!entry) return undefined
      try {
        const { size } = await fs.stat(entry.file)
        if (size !== entry.fileSize) throw new Error(`entry file is ${size} bytes, expected ${entry.fileSize}`)
      } catch (error) {
        await reads.fail('read', error, key, entry)
        return undefined
      }
      // Deleted or replaced while the stat ran: not a hit.
      if (index.peek(key) !== entry) return undefined
      return { tier: 'disk', meta: entry.meta, storedAt: entry.storedAt, open: (range) => openBody(reads, key, entry, range) }
    },

    async set(key, meta, body, options) {
      if (meta.size !== byteLength(body)) throw new TypeError(`meta.size ${meta.size} != body length ${byteLength(body)}`)
      const token = {}
      pending.set(key, token)
      // Whatever happens below, the caller meant to supersede the old copy: a refused set drops it.
      const refuse = async () => {
        if (pending.get(key) === token) {
          pending.delete(key)
          await forget(key)
        }
        return false
      }
      // Everything that can refuse the write is checked before the body is hashed (a 64 MiB body takes ~40 ms).
      const { entry: planned, header } = plan(key, meta, options)
      const unreadable = planned.offset > PREFIX_BYTES + MAX_HEADER_BYTES // recovery would drop it
      if (unreadable || charge(planned.fileSize) > maxBytes || !writer.accepting) return refuse()
      const digest = await digestOf(body)
      // Writes may have been paused while a long body was hashed.
      if (!writer.accepting) return refuse()
      const head = encodeHeader({ ...header, sha256: digest })
      const entry: Entry = { ...planned, sha256: digest }
      try {
        await upkeep.track(writer.write(entry.file, head, body))
      } catch (error) {
        upkeep.report('write', error, { file: entry.file })
        return refuse()
      }
      if (pending.get(key) !== token) {
        // Deleted or set again while this write ran: these bytes may be stale.
        await upkeep.unlinkQuietly(entry.file)
        return false
      }
      pending.delete(key)
      index.set(key, entry, charge(entry.fileSize))
      await upkeep.reap()
      return true
    },

    async delete(key) {
      pending.delete(key)
      await forget(key)
    },

    touch(key) {
      index.get(key)
    },

    refresh(key, meta, storedAt) {
      const entry = index.peek(key)
      if (entry && entry.meta.size === meta.size && entry.meta.etag === meta.etag) entry.storedAt = storedAt
    },

    /** With the writes under way: a purge must delete (and so cancel) a set that has not landed yet. */
    keys(prefix) {
      const found = keysWith(index.keys(), prefix)
      for (const key of pending.keys()) if (key.startsWith(prefix) && index.peek(key) === undefined) found.push(key)
      return found
    },

    stats(): Record<string, TierStats> {
      return { disk: { entries: index.size, bytes: index.bytes, maxBytes } }
    },

    close: () => upkeep.settled(),
  }
}
