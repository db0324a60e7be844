import { BadRequestError } from '../errors.ts'
import type { ListEntry, ListOptions, ListResult } from './types.ts'

/** S3 ListObjectsV2 answers at most 1000 keys a page. */
export const MAX_LIST_KEYS = 1000

/** Checks `maxKeys` (1–1000) before any store call. */
export function checkMaxKeys(maxKeys: number): void {
  if (!Number.isInteger(maxKeys) || maxKeys < 1 || maxKeys > MAX_LIST_KEYS) throw new BadRequestError(`maxKeys must be an integer from 1 to ${MAX_LIST_KEYS}, got ${maxKeys}`)
}

/** UTF-8 binary order (S3's), which is not JavaScript's UTF-16 order above U+FFFF. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/** A continuation token of our own: the last key or common prefix of the page, base64url. */
export function encodeToken(last: string): string {
  return Buffer.from(last).toString('base64url')
}

export function decodeToken(token: string): string {
  const last = Buffer.from(token, 'base64url').toString()
  // base64url decoding never throws: a token we did not make shows as one that does not round-trip.
  if (last.length === 0 || encodeToken(last) !== token) throw new BadRequestError('invalid continuation token')
  return last
}

/** Where a page starts: after the token's key, else after `startAfter` (S3: the token wins). */
export function listStart(options: ListOptions): string | undefined {
  return options.continuationToken !== undefined ? decodeToken(options.continuationToken) : options.startAfter
}

/**
 * One ListObjectsV2 page over `entries`, every key under `prefix` in UTF-8 binary order
 * (keys not above `after` are skipped). With a delimiter, a key with the delimiter after the
 * prefix counts once, as its common prefix. The token is the page's last key or common prefix:
 * resuming after a common prefix skips every key under it, since they sort after it and group
 * into it again.
 */
export async function pageOf(entries: AsyncIterable<ListEntry>, options: ListOptions, after: string | undefined): Promise<ListResult> {
  const prefix = options.prefix ?? ''
  const { delimiter, maxKeys } = options
  const objects: ListEntry[] = []
  const commonPrefixes: string[] = []
  let last: string | undefined
  for await (const entry of entries) {
    if (!entry.key.startsWith(prefix)) continue
    let item: ListEntry | string = entry
    if (delimiter) {
      const at = entry.key.indexOf(delimiter, prefix.length)
      if (at >= 0) item = entry.key.slice(0, at + delimiter.length)
    }
    const name = typeof item === 'string' ? item : item.key
    if (name === last || (after !== undefined && compareKeys(name, after) <= 0)) continue
    if (objects.length + commonPrefixes.length === maxKeys) {
      return { objects, commonPrefixes, isTruncated: true, nextContinuationToken: encodeToken(last as string) }
    }
    if (typeof item === 'string') commonPrefixes.push(item)
    else objects.push(item)
    last = name
  }
  return { objects, commonPrefixes, isTruncated: false }
}
