/**
 * Small named constructors for an opened object, one per `ObjectSource`: what a read of each
 * kind of object does, in one place.
 */
import type { Readable } from 'node:stream'
import { sliceBytes } from '../cache/bytes.ts'
import type { Fill } from '../cache/fill.ts'
import type { CacheHit } from '../cache/types.ts'
import type { CacheResult } from '../metrics.ts'
import { openOrElse, sliceStream } from '../streams.ts'
import type { ByteRange, ObjectMeta } from '../stores/types.ts'
import type { PagePlan } from './page-budget.ts'
import { type OpenObject, type ObjectSource, resultOf } from './types.ts'

/** A GET of `range` that fails unless the store still has the version the object was opened as. */
export type ReadVersion = (meta: ObjectMeta, range?: ByteRange) => Promise<Readable>

const NOTHING = () => {}
const ALL_CACHED = async () => true

function opened(source: ObjectSource, meta: ObjectMeta, read: OpenObject['read'], release: () => void = NOTHING): OpenObject {
  const result = resultOf(source)
  return { meta, source, result, read, cached: async () => result === 'hit', release }
}

/** A memory hit: its bytes, sliced without a copy. One object literal: this is the hot path. */
export function fromMemory(hit: Extract<CacheHit, { tier: 'memory' }>): OpenObject {
  const body = hit.body
  return {
    meta: hit.meta,
    source: 'memory',
    result: 'hit',
    bytes: body,
    read: async (range) => (range ? sliceBytes(body, range.start, range.end) : body),
    cached: ALL_CACHED,
    release: NOTHING,
    freshness: undefined,
  }
}

/** A disk hit: an entry evicted or replaced since its lookup is read from the store instead. */
export function fromDisk(hit: Extract<CacheHit, { tier: 'disk' }>, readVersion: ReadVersion): OpenObject {
  return opened('disk', hit.meta, (range) => openOrElse(hit.open(range), () => readVersion(hit.meta, range)))
}

/** A whole-object fill, new (`fill`) or joined: every reader follows its bytes as they arrive. */
export function fromFill(fill: Fill, joined: boolean): OpenObject {
  return opened(joined ? 'joined' : 'fill', fill.meta, async (range) => (range ? sliceStream(fill.subscribe(), range) : fill.subscribe()))
}

/** Page caching off: each range of a large object is its own exact ranged GET. */
export function direct(meta: ObjectMeta, readVersion: ReadVersion): OpenObject {
  return opened('direct', meta, (range) => readVersion(meta, range))
}

/**
 * An object too large to cache. The first request to read takes the body of the GET that
 * opened it; any other reads its own (streaming one body to many clients of different speeds would need unbounded
 * buffering), of the same version only.
 */
export function passThrough(meta: ObjectMeta, take: () => Readable | undefined, readVersion: ReadVersion, joined: boolean): OpenObject {
  let body = take()
  const object = opened(
    'pass-through',
    meta,
    async (range) => {
      const taken = body
      body = undefined
      if (taken) return range ? sliceStream(taken, range) : taken
      return readVersion(meta, range)
    },
    () => {
      body?.destroy()
      body = undefined
    },
  )
  if (joined) object.result = 'inflight'
  return object
}

export interface PagedReads {
  plan(ranges: readonly ByteRange[]): Promise<PagePlan>
  read(range: ByteRange, mayFetch: PagePlan['mayFetch']): Promise<Readable>
  count(result: CacheResult): void
}

/**
 * A large object read through its pages. Its hit or miss depends on the ranges asked for: it
 * is counted in `cached`, which also plans which cold pages the request may fetch
 * (page-budget.ts) before any read, or else when it is released. `preset`: the request's result is already known (it
 * started or joined the object's first GET), and it is never a hit.
 */
export function paged(meta: ObjectMeta, pages: PagedReads, preset?: CacheResult): OpenObject {
  let plan: Promise<PagePlan> | undefined
  const planned = (ranges: readonly ByteRange[]) => (plan ??= pages.plan(ranges))
  let counted = false
  const count = (result: CacheResult) => {
    if (counted) return
    counted = true
    pages.count(result)
  }
  return {
    meta,
    source: 'page',
    result: preset ?? 'miss',
    async read(range = { start: 0, end: meta.size - 1 }) {
      const { mayFetch } = await planned([range])
      return pages.read(range, mayFetch)
    },
    async cached(ranges) {
      const { cached } = await planned(ranges)
      count(preset ?? (cached ? 'hit' : 'miss'))
      return cached && !preset
    },
    // Answered without its ranges being planned (304, 412, 416): counted as what it is known to be.
    release: () => count(preset ?? 'miss'),
  }
}
