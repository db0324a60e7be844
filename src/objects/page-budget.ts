/**
 * How much a request may make the gateway fetch that it did not ask for (issue 16).
 *
 * Reading ranges through pages fetches whole pages: a page inside a range is asked for whole,
 * but a page at the end of a range is asked for in part, and the rest of it is spare bytes
 * pulled from the store for nobody. Eight one-byte ranges on eight cold pages would pull eight
 * pages. So, before reading, count the spare bytes of the cold part-pages: if they come to at
 * most `SPARE_PAGES` pages, the read fetches and caches those pages as usual; otherwise it reads
 * only the bytes the ranges want from them (ranged GETs, not cached). Pages asked for whole are
 * always fetched and cached; pages already cached or being fetched cost nothing.
 *
 * The bound: one request pulls at most `SPARE_PAGES` × page size from the store beyond the
 * bytes it asks for. A single range always pages (its two end pages are its only spare bytes),
 * so sequential reads, zip and parquet readers keep their cache; only scattered probes do not.
 */
import type { ByteRange } from '../stores/types.ts'

/** Pages' worth of bytes a request may fetch beyond those it asks for. */
export const SPARE_PAGES = 2

/** `inflight`: another request is fetching the page; joining it costs nothing upstream. */
export type PageState = 'cached' | 'inflight' | 'missing'

export interface PagePlan {
  /** Every page the ranges touch is cached (`X-CG-Status: hit=1`). */
  cached: boolean
  /** Bytes of cold part-pages the ranges do not ask for: fetched only if within the budget. */
  spare: number
  /**
   * May a read fetch page `index` whole (and cache it), when it is neither cached nor being
   * fetched? Else it reads only the bytes it wants from it. A part-page is allowed at most once
   * (consumed on use), so an eviction mid-response cannot make the request fetch it twice.
   */
  mayFetch(index: number): boolean
}

/**
 * Plans a paged read of `ranges` (not overlapping; any order) of an object of `size` bytes.
 * `state` is asked at most once per page, and only for pages the answer depends on.
 *
 * @example
 * // 1-byte ranges on three cold 1 MiB pages: ~3 MiB spare, over the 2-page budget.
 * const plan = await planPages([{ start: 5, end: 5 }, { start: MiB + 5, end: MiB + 5 }, { start: 2 * MiB + 5, end: 2 * MiB + 5 }], MiB, 4 * MiB, async () => 'missing')
 * plan.mayFetch(0) // false: read byte 5 alone
 */
export async function planPages(ranges: readonly ByteRange[], pageSize: number, size: number, state: (index: number) => Promise<PageState>): Promise<PagePlan> {
  const first = (index: number) => index * pageSize
  const last = (index: number) => Math.min((index + 1) * pageSize, size) - 1
  const states = new Map<number, PageState>()
  const lookup = async (index: number): Promise<PageState> => {
    let known = states.get(index)
    if (known === undefined) states.set(index, (known = await state(index)))
    return known
  }

  // Bytes asked of each page at the end of a range (two ranges may end in one page).
  const asked = new Map<number, number>()
  for (const { start, end } of ranges) {
    for (const index of new Set([Math.floor(start / pageSize), Math.floor(end / pageSize)])) {
      const overlap = Math.min(end, last(index)) - Math.max(start, first(index)) + 1
      asked.set(index, (asked.get(index) ?? 0) + overlap)
    }
  }
  const partPages = new Set<number>()
  const cold = new Set<number>()
  let spare = 0
  for (const [index, bytes] of asked) {
    const length = last(index) - first(index) + 1
    if (bytes === length) continue
    partPages.add(index)
    if ((await lookup(index)) !== 'missing') continue
    cold.add(index)
    spare += length - bytes
  }
  if (spare > SPARE_PAGES * pageSize) cold.clear()

  let cached = true
  scan: for (const { start, end } of ranges) {
    for (let index = Math.floor(start / pageSize); index <= Math.floor(end / pageSize); index++) {
      if ((await lookup(index)) !== 'cached') {
        cached = false
        break scan
      }
    }
  }

  const wholeInRange = (index: number) => ranges.some((range) => range.start <= first(index) && range.end >= last(index))
  return {
    cached,
    spare,
    mayFetch(index) {
      if (!partPages.has(index)) return wholeInRange(index)
      return cold.delete(index)
    },
  }
}
