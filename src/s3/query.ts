/**
 * The query of an S3 request, decoded the way SigV4 canonicalises it: `%XX` only (a `+` is a
 * plus: AWS clients encode a space as `%20`), repeated names kept as arrays. Bounded by the
 * request line Node already limits.
 */
import { S3Error } from './errors.ts'

/** Name → value(s), in the shape `@smithy/signature-v4` canonicalises. */
export type QueryBag = Record<string, string | string[]>

export function parseQuery(query: string): QueryBag {
  const bag: QueryBag = {}
  if (query === '') return bag
  for (const pair of query.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    let name: string
    let value: string
    try {
      name = decodeURIComponent(eq === -1 ? pair : pair.slice(0, eq))
      value = eq === -1 ? '' : decodeURIComponent(pair.slice(eq + 1))
    } catch (error) {
      throw new S3Error('InvalidArgument', 'malformed percent-encoding in the query string', { cause: error })
    }
    // A plain object is what the signer takes: keep its prototype out of reach.
    if (name === '__proto__' || name === 'constructor' || name === 'prototype') throw new S3Error('InvalidArgument', `query parameter "${name}" is not accepted`)
    // Own values only: a name such as `valueOf` or `toString` is a parameter like any other.
    const previous = Object.hasOwn(bag, name) ? bag[name] : undefined
    bag[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value]
  }
  return bag
}

/** The one value of `name`, or undefined; a repeated parameter is refused (which one would count?). */
export function single(bag: QueryBag, name: string): string | undefined {
  const value = bag[name]
  if (Array.isArray(value)) throw new S3Error('InvalidArgument', `query parameter "${name}" given more than once`)
  return value
}

export function has(bag: QueryBag, name: string): boolean {
  return Object.hasOwn(bag, name)
}

/** True when the bag holds any parameter (most GetObjects carry none). */
export function hasAny(bag: QueryBag): boolean {
  for (const _ in bag) return true
  return false
}
