import { Readable } from 'node:stream'
import { type Bytes, chunksOf, sliceBytes } from './cache/bytes.ts'
import { Fill } from './cache/fill.ts'
import type { Cache } from './cache/types.ts'
import { UpstreamError } from './errors.ts'
import { type PagePlan, type PageState, planPages } from './page-budget.ts'
import { isMissingFile, sliceStream, whenReadable } from './streams.ts'
import type { ByteRange, ObjectMeta, Store } from './stores/types.ts'

export interface PagerOptions {
  cache: Cache
  /** Page size in bytes (Cachey's default is 16 MiB). */
  pageSize: number
  /** Pages fetched ahead of the one being sent: bounds memory per response. */
  readAhead: number
  /** Wraps a store call with metrics. */
  upstream<T>(store: Store, op: string, call: () => Promise<T>): Promise<T>
  /** A ranged GET of exactly `range`, not cached, that fails unless the store still has version `meta`. */
  readExact(store: Store, key: string, meta: ObjectMeta, range: ByteRange): Promise<Readable>
  /** Guards a page body the pager reads (an idle timeout). */
  watch(store: Store, body: Readable): Readable
  /** The object changed upstream (its ETag or size moved): forget what we knew of it. */
  onChanged(ck: string): Promise<void>
  /** A page body failed after its headers (the responses reading it end early). */
  onBodyError(store: Store, error: unknown): void
}

/**
 * A page in memory or on disk, or one still arriving: a fill that every reader streams from
 * as its bytes come in, so the first byte of a page miss goes out before the page is whole.
 * `exact`: a page this request may not fetch (see page-budget.ts): read only the bytes wanted.
 */
type Page = { bytes: Bytes } | { open(range: ByteRange): Readable } | { fill: Fill } | { exact: true }

/**
 * A page is cached as an entry of its own size (tiers check that size against the bytes),
 * with the object's ETag, type and date: the ETag plus the page's expected length identify
 * the object version it belongs to.
 */
function pageMeta(meta: ObjectMeta, length: number): ObjectMeta {
  return { ...meta, size: length }
}

export function pageKey(ck: string, index: number): string {
  return `${ck}\u0000page:${index}`
}

/**
 * A page fill is shared only by readers of the same object version: after a PUT, a reader
 * of the new version must never join a fill of the old one still in flight.
 */
function flightKey(pk: string, meta: ObjectMeta): string {
  return `${pk}\u0000${meta.etag ?? ''}\u0000${meta.size}\u0000${meta.lastModified?.getTime() ?? ''}`
}

/**
 * Page-aligned partial caching for large objects: a range is served from the fixed-size pages
 * it covers, each fetched with one ranged upstream GET under its own singleflight and cached
 * like any entry. Every page carries the object's ETag: a page of another version is never
 * stitched into a response (it is refetched, and a mismatch upstream fails the response).
 */
export function createPager(options: PagerOptions) {
  const { cache, pageSize, readAhead, upstream } = options
  const flights = new Map<string, Promise<Page>>()

  function pageRange(meta: ObjectMeta, index: number): ByteRange {
    return { start: index * pageSize, end: Math.min((index + 1) * pageSize, meta.size) - 1 }
  }

  /** The cached page belongs to this version of the object: same ETag, this page's length. */
  function isPageOf(cached: ObjectMeta, meta: ObjectMeta, index: number): boolean {
    const range = pageRange(meta, index)
    return cached.etag === meta.etag && cached.size === range.end - range.start + 1
  }

  /** Starts a page's upstream GET; resolves once its headers are checked, with the fill. */
  async function fetchPage(store: Store, key: string, ck: string, meta: ObjectMeta, index: number): Promise<{ fill: Fill; filled: Promise<Bytes> }> {
    const range = pageRange(meta, index)
    const got = await upstream(store, 'get-page', () => store.get(key, { range }))
    const length = range.end - range.start + 1
    if (!got || got.meta.size !== meta.size || (meta.etag && got.meta.etag !== meta.etag) || got.range?.start !== range.start || got.range.end !== range.end) {
      got?.body.destroy()
      await options.onChanged(ck)
      throw new UpstreamError(store.id, 'server', 'object changed upstream during a paged read')
    }
    // The fill checks the length: a short or long body fails every reader and is never cached.
    const fill = new Fill(pageMeta(meta, length))
    return { fill, filled: fill.consume(options.watch(store, got.body)) }
  }

  /** One page, from the cache when it holds this version, else joined or fetched (singleflight) if `mayFetch` lets it. */
  async function getPage(store: Store, key: string, ck: string, meta: ObjectMeta, index: number, mayFetch: PagePlan['mayFetch'], fromCache = true): Promise<Page> {
    const pk = pageKey(ck, index)
    const hit = fromCache ? await cache.get(pk) : undefined
    if (hit && isPageOf(hit.meta, meta, index)) return hit.tier === 'memory' ? { bytes: hit.body } : { open: hit.open }
    const fk = flightKey(pk, meta)
    let flight = flights.get(fk)
    if (!flight) {
      if (!mayFetch(index)) return { exact: true }
      const fetched = fetchPage(store, key, ck, meta, index)
      flight = fetched.then(({ fill }) => ({ fill }))
      flights.set(fk, flight)
      const joinable = flight
      const forget = () => flights.get(fk) === joinable && flights.delete(fk)
      // Readers stream the page as it arrives; the flight stays joinable until the cache
      // holds it (a disk write can take a while), so nobody fetches it twice meanwhile.
      fetched
        .then(({ fill, filled }) =>
          filled.then(
            (bytes) => cache.set(pk, fill.meta, bytes),
            (error: unknown) => options.onBodyError(store, error),
          ),
        )
        .catch(() => {}) // a failed GET reaches its callers through `flight`
        .finally(forget)
    }
    return flight
  }

  /** Where page `index` stands for this version: cached, being fetched, or neither. */
  async function pageState(ck: string, meta: ObjectMeta, index: number): Promise<PageState> {
    const pk = pageKey(ck, index)
    const hit = await cache.get(pk)
    if (hit && isPageOf(hit.meta, meta, index)) return 'cached'
    return flights.has(flightKey(pk, meta)) ? 'inflight' : 'missing'
  }

  /** Decides, once per request and before any read, which cold pages its ranges may fetch. */
  function plan(ck: string, meta: ObjectMeta, ranges: readonly ByteRange[]): Promise<PagePlan> {
    return planPages(ranges, pageSize, meta.size, (index) => pageState(ck, meta, index))
  }

  /**
   * Streams `range` page after page, fetching at most `readAhead` pages beyond the one being
   * sent. The first page's upstream answer is awaited before this resolves, so a failing
   * store is an error status rather than a truncated body; its bytes stream as they arrive.
   * A page `mayFetch` refuses (and not cached or in flight) is read as the exact bytes wanted.
   */
  async function read(store: Store, key: string, ck: string, meta: ObjectMeta, range: ByteRange, mayFetch: PagePlan['mayFetch']): Promise<Readable> {
    const first = Math.floor(range.start / pageSize)
    const last = Math.floor(range.end / pageSize)
    const pending = new Map<number, Promise<Page>>()
    const request = (index: number) => {
      if (index > last || pending.has(index)) return
      const page = getPage(store, key, ck, meta, index, mayFetch)
      page.catch(() => {}) // observed when awaited; a page nobody awaits must not crash the process
      pending.set(index, page)
    }
    /** The bytes of `range` that page `index` holds, relative to the page. */
    const wantedOf = (index: number): ByteRange => {
      const base = index * pageSize
      return { start: Math.max(range.start, base) - base, end: Math.min(range.end, base + pageSize - 1) - base }
    }
    const exactly = (index: number) => {
      const { start, end } = wantedOf(index)
      return options.readExact(store, key, meta, { start: index * pageSize + start, end: index * pageSize + end })
    }
    request(first)
    // An exact first page is opened now too, so that its failure is still an error status.
    let opened = 'exact' in (await pending.get(first)!) ? await exactly(first) : undefined
    async function* pages(): AsyncGenerator<Buffer> {
      for (let index = first; index <= last; index++) {
        for (let ahead = 1; ahead <= readAhead; ahead++) request(index + ahead)
        request(index)
        let page = await pending.get(index)!
        pending.delete(index)
        const wanted = wantedOf(index)
        const { start: from, end: to } = wanted
        let body: Readable | undefined
        if ('open' in page) {
          body = page.open(wanted)
          try {
            await whenReadable(body)
          } catch (error) {
            // Evicted or replaced between the lookup and the open: fetch the page instead.
            if (!isMissingFile(error)) throw error
            body = undefined
            page = await getPage(store, key, ck, meta, index, mayFetch, false)
          }
        }
        if ('bytes' in page) yield* chunksOf(sliceBytes(page.bytes, from, to))
        else {
          body ??= 'open' in page ? page.open(wanted) : 'fill' in page ? sliceStream(page.fill.subscribe(), wanted) : (opened ?? (await exactly(index)))
          opened = undefined
          for await (const chunk of body) yield chunk as Buffer
        }
      }
    }
    const out = Readable.from(pages(), { objectMode: false })
    // The first page's exact body was opened before the generator ran: a client that leaves
    // first must still release it (a connection to the store).
    out.once('close', () => opened?.destroy())
    return out
  }

  return { read, plan, inflight: () => flights.size }
}

export type Pager = ReturnType<typeof createPager>
