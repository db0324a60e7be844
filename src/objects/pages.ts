import { Readable } from 'node:stream'
import { type Bytes, chunksOf, sliceBytes } from '../cache/bytes.ts'
import { Fill } from '../cache/fill.ts'
import { pageFlightKey, pageKey } from '../cache/keys.ts'
import { Singleflight } from '../cache/singleflight.ts'
import type { Cache } from '../cache/types.ts'
import { UpstreamError, asUpstreamError } from '../errors.ts'
import { openOrElse, sliceStream } from '../streams.ts'
import type { ByteRange, ObjectMeta, Store } from '../stores/types.ts'
import { type PagePlan, type PageState, planPages } from './page-budget.ts'
import { sameVersion, versionOf } from './versions.ts'

export interface PagerOptions {
  cache: Cache
  /** Page size in bytes (Cachey's default is 16 MiB). */
  pageSize: number
  /** Pages fetched ahead of the one being sent: bounds memory per response. */
  readAhead: number
  /** A ranged GET of exactly `range`, not cached, that fails unless the store still has version `meta`. */
  readExact(store: Store, key: string, meta: ObjectMeta, range: ByteRange): Promise<Readable>
  /** The object changed upstream (its ETag or size moved): forget what we knew of it. */
  onChanged(ck: string): Promise<void>
  /** A page body failed after its headers (the responses reading it end early). */
  onBodyError(store: Store, error: unknown): void
}

/**
 * A page in memory or on disk, or one still arriving (a fill every reader streams from as its
 * bytes come in, so the first byte of a page miss goes out before the page is whole), or one
 * this request may not fetch (page-budget.ts): then only the bytes wanted are read.
 */
type Page = { kind: 'memory'; bytes: Bytes } | { kind: 'disk'; open(range: ByteRange): Readable } | { kind: 'fill'; fill: Fill } | { kind: 'exact' }

/**
 * A page is cached as an entry of its own size (tiers check that size against the bytes),
 * with the object's ETag, type and date: those plus the page's expected length identify the
 * object version it belongs to.
 */
function pageMeta(meta: ObjectMeta, length: number): ObjectMeta {
  return { ...meta, size: length }
}

/**
 * Page-aligned partial caching for large objects: a range is served from the fixed-size pages
 * it covers, each fetched with one ranged upstream GET under its own singleflight and cached
 * like any entry. Every page carries the object's version: a page of another version is never
 * stitched into a response (it is refetched, and a mismatch upstream fails the response).
 */
export function createPager(options: PagerOptions) {
  const { cache, pageSize, readAhead } = options
  const flights = new Singleflight<string, Page>()

  function pageRange(meta: ObjectMeta, index: number): ByteRange {
    return { start: index * pageSize, end: Math.min((index + 1) * pageSize, meta.size) - 1 }
  }

  /** The cached page belongs to this version of the object (ETag, date) and has this page's length. */
  function isPageOf(cached: ObjectMeta, meta: ObjectMeta, index: number): boolean {
    const range = pageRange(meta, index)
    return sameVersion(cached, { ...meta, size: cached.size }) && cached.size === range.end - range.start + 1
  }

  /** Starts a page's upstream GET; resolves once its headers are checked, with the fill. */
  async function fetchPage(store: Store, key: string, ck: string, meta: ObjectMeta, index: number): Promise<{ fill: Fill; filled: Promise<Bytes> }> {
    const range = pageRange(meta, index)
    // Pages of one version come from the store that answered for it (fallback stores differ in ETags).
    const got = await store.get(key, { range, op: 'get-page', prefer: meta.servedBy ?? store.id })
    const length = range.end - range.start + 1
    if (!got || !sameVersion(got.meta, meta) || got.range?.start !== range.start || got.range.end !== range.end) {
      got?.body.destroy()
      await options.onChanged(ck)
      throw new UpstreamError(store.id, 'server', 'object changed upstream during a paged read')
    }
    // The fill checks the length: a short or long body fails every reader and is never cached.
    const fill = new Fill(pageMeta(meta, length))
    return { fill, filled: fill.consume(got.body) }
  }

  /** One page, from the cache when it holds this version, else joined or fetched (singleflight) if `mayFetch` lets it. */
  async function getPage(store: Store, key: string, ck: string, meta: ObjectMeta, index: number, mayFetch: PagePlan['mayFetch'], fromCache = true): Promise<Page> {
    const pk = pageKey(ck, index)
    const hit = fromCache ? await cache.get(pk) : undefined
    if (hit && isPageOf(hit.meta, meta, index)) return hit.tier === 'memory' ? { kind: 'memory', bytes: hit.body } : { kind: 'disk', open: hit.open }
    const fk = pageFlightKey(pk, versionOf(meta))
    if (!flights.has(fk) && !mayFetch(index)) return { kind: 'exact' }
    let filled: Promise<unknown> | undefined
    // Readers stream the page as it arrives; the flight stays joinable until the cache holds
    // it (a disk write can take a while), so nobody fetches it twice meanwhile.
    const { value } = flights.run(
      fk,
      async () => {
        const fetched = await fetchPage(store, key, ck, meta, index)
        filled = fetched.filled.then(
          (bytes) => cache.set(pk, fetched.fill.meta, bytes),
          (error: unknown) => options.onBodyError(store, error),
        )
        return { kind: 'fill', fill: fetched.fill }
      },
      () => filled,
    )
    return value
  }

  /** Where page `index` stands for this version: cached, being fetched, or neither. */
  async function pageState(ck: string, meta: ObjectMeta, index: number): Promise<PageState> {
    const pk = pageKey(ck, index)
    const hit = await cache.get(pk)
    if (hit && isPageOf(hit.meta, meta, index)) return 'cached'
    return flights.has(pageFlightKey(pk, versionOf(meta))) ? 'inflight' : 'missing'
  }

  /** Decides, once per request and before any read, which cold pages its ranges may fetch. */
  function plan(ck: string, meta: ObjectMeta, ranges: readonly ByteRange[]): Promise<PagePlan> {
    return planPages(ranges, pageSize, meta.size, (index) => pageState(ck, meta, index))
  }

  /**
   * Streams `range` page after page, fetching at most `readAhead` pages beyond the one being
   * sent. The first page's first byte (or its failure) is awaited before this resolves, so a
   * failing store is an error status rather than a cut response; its bytes stream as they
   * arrive. A page `mayFetch` refuses (and not cached or in flight) is read as the exact bytes wanted.
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
    /** A page's wanted bytes as a stream; a disk page evicted or replaced since its lookup is fetched instead. */
    const open = async (index: number, page: Page): Promise<Readable | Bytes> => {
      const wanted = wantedOf(index)
      switch (page.kind) {
        case 'memory':
          return sliceBytes(page.bytes, wanted.start, wanted.end)
        case 'disk':
          return openOrElse(page.open(wanted), async () => open(index, await getPage(store, key, ck, meta, index, mayFetch, false)))
        case 'fill':
          return sliceStream(page.fill.subscribe(), wanted)
        case 'exact':
          return exactly(index)
      }
    }
    request(first)
    const firstPage = await pending.get(first)!
    // Headers wait for the first byte: a page whose body fails before it is still a 5xx.
    if (firstPage.kind === 'fill') {
      await firstPage.fill.head(1).catch((error: unknown) => {
        throw asUpstreamError(store.id, error, 'page body failed before its first byte')
      })
    }
    // An exact first page is opened now too, so that its failure is still an error status.
    let opened = firstPage.kind === 'exact' ? await exactly(first) : undefined
    async function* pages(): AsyncGenerator<Buffer> {
      for (let index = first; index <= last; index++) {
        for (let ahead = 1; ahead <= readAhead; ahead++) request(index + ahead)
        request(index)
        const page = await pending.get(index)!
        pending.delete(index)
        const body = opened ?? (await open(index, page))
        opened = undefined
        if (Buffer.isBuffer(body) || Array.isArray(body)) yield* chunksOf(body)
        else for await (const chunk of body) yield chunk as Buffer
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
