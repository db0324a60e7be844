/**
 * Range requests (RFC 9110 §14): parse the `Range` field into a discriminated union, then
 * resolve it against the object size. Pure: no I/O, no framework types.
 *
 * Policy, in one place:
 * - A malformed field, an unknown unit or an invalid spec (`bytes=5-2`) is ignored as a whole
 *   and the full object is served with 200 (RFC 9110 §14.2: a server MAY ignore a Range field
 *   with an invalid ranges-specifier; it MUST ignore one with a unit it does not understand).
 * - Positions beyond `Number.MAX_SAFE_INTEGER` are valid syntax (RFC 9110 §14.1.1: recipients
 *   MUST anticipate large numerals and not fail on integer overflow). They parse to a lossy
 *   `number` (possibly `Infinity`) that only ever compares as "larger than any object": a huge
 *   first-pos is unsatisfiable (416), a huge last-pos or suffix-length is clamped to the size.
 *   `first > last` is checked on the exact decimal strings, so no precision loss leaks into it.
 * - Several ranges that overlap or touch, or more than `maxRanges` of them, are answered with
 *   the full object: this defeats the multi-range amplification attack (RFC 9110 §17.15) and
 *   is allowed by RFC 9110 §14.2 (MAY ignore overlapping or many small ranges).
 * - A non-zero suffix (`bytes=-100`) of an empty object is the one satisfiable range an empty
 *   representation has (RFC 9110 §14.1.2), so it is no 416 (§15.5.17), yet no 206 can express
 *   zero bytes: the field is ignored and the empty object is served with 200 (§14.2).
 * - Multiple ranges come back in request order, as RFC 9110 §15.3.7.2 says the parts SHOULD
 *   be sent. Every read path opens each part on its own (a slice of memory, a positioned file
 *   read, its own pages or ranged GET), so the order costs nothing.
 */
import { randomBytes } from 'node:crypto'
import type { ByteRange } from '../stores/types.ts'
import { trimOws } from './ows.ts'

/** One `range-spec` of the `bytes` unit (RFC 9110 §14.1.1). */
export type RangeSpec =
  | { kind: 'bounded'; start: number; end: number }
  | { kind: 'open-ended'; start: number }
  | { kind: 'suffix'; length: number }

/** `none`: serve the whole object with 200, as if no Range field had been sent. */
export type ParsedRange = { type: 'none' } | { type: 'ranges'; specs: RangeSpec[] }

/** `full` → 200; `partial` → 206 (multipart when several); `unsatisfiable` → 416. */
export type ResolvedRange =
  | { type: 'full' }
  | { type: 'partial'; ranges: ByteRange[] }
  | { type: 'unsatisfiable' }

export interface ResolveOptions {
  /** More satisfiable ranges than this → serve the full object. Default 8. */
  maxRanges?: number
}

export const DEFAULT_MAX_RANGES = 8

const NONE: ParsedRange = { type: 'none' }
const SPEC = /^(\d*)-(\d*)$/

/**
 * Parses a `Range` field value. Anything this server would not honour is `{ type: 'none' }`.
 *
 * @example
 * parseRange('bytes=0-99, -500')
 * // { type: 'ranges', specs: [{ kind: 'bounded', start: 0, end: 99 }, { kind: 'suffix', length: 500 }] }
 * parseRange('items=0-1') // { type: 'none' }
 */
export function parseRange(header: string | undefined): ParsedRange {
  if (header === undefined) return NONE
  const eq = header.indexOf('=')
  if (eq < 0) return NONE
  // RFC 9110 §14.1: range units are compared case-insensitively.
  if (trimOws(header.slice(0, eq)).toLowerCase() !== 'bytes') return NONE
  const specs: RangeSpec[] = []
  // RFC 9110 §5.6.1: list elements are separated by OWS "," OWS, and a recipient MUST accept
  // (and ignore) empty elements, so `bytes=0-1,` and `bytes=,0-1` are fine.
  for (const element of header.slice(eq + 1).split(',')) {
    const text = trimOws(element)
    if (text === '') continue
    const spec = parseSpec(text)
    if (spec === undefined) return NONE
    specs.push(spec)
  }
  // RFC 9110 §14.1.1: range-set = 1#range-spec, at least one element.
  return specs.length === 0 ? NONE : { type: 'ranges', specs }
}

function parseSpec(text: string): RangeSpec | undefined {
  const match = SPEC.exec(text)
  if (match === null) return undefined
  const first = match[1] ?? ''
  const last = match[2] ?? ''
  if (first === '') return last === '' ? undefined : { kind: 'suffix', length: Number(last) }
  if (last === '') return { kind: 'open-ended', start: Number(first) }
  // RFC 9110 §14.1.1: an int-range whose last-pos is less than its first-pos is invalid.
  if (compareDecimal(first, last) > 0) return undefined
  return { kind: 'bounded', start: Number(first), end: Number(last) }
}

/** Compares two non-negative decimal strings exactly, whatever their length. */
function compareDecimal(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '')
  const y = b.replace(/^0+(?=\d)/, '')
  if (x.length !== y.length) return x.length - y.length
  return x < y ? -1 : x > y ? 1 : 0
}

/**
 * Resolves parsed specs against the object size.
 *
 * @example
 * resolveRanges(parseRange('bytes=-500'), 10000) // { type: 'partial', ranges: [{ start: 9500, end: 9999 }] }
 * resolveRanges(parseRange('bytes=10000-'), 10000) // { type: 'unsatisfiable' }
 * resolveRanges(parseRange('bytes=0-10, 5-20'), 10000) // { type: 'full' } (overlap)
 * resolveRanges(parseRange('bytes=500-599, 0-99'), 10000) // partial: [500-599, 0-99], request order
 * resolveRanges(parseRange('bytes=-100'), 0) // { type: 'full' } (200 with the empty body)
 */
export function resolveRanges(parsed: ParsedRange, size: number, options: ResolveOptions = {}): ResolvedRange {
  const maxRanges = options.maxRanges ?? DEFAULT_MAX_RANGES
  if (!Number.isSafeInteger(maxRanges) || maxRanges < 1) {
    throw new TypeError(`maxRanges must be a positive integer, got ${maxRanges}`)
  }
  if (!Number.isSafeInteger(size) || size < 0) throw new TypeError(`size must be a non-negative integer, got ${size}`)
  if (parsed.type === 'none') return { type: 'full' }
  if (size === 0) {
    // RFC 9110 §14.1.2: for an empty representation only a non-zero suffix is satisfiable;
    // §15.5.17 keeps 416 for when no range is, and §14.2 lets us ignore the field otherwise.
    return parsed.specs.some((spec) => spec.kind === 'suffix' && spec.length > 0) ? { type: 'full' } : { type: 'unsatisfiable' }
  }
  const ranges: ByteRange[] = []
  for (const spec of parsed.specs) {
    const range = resolveSpec(spec, size)
    if (range !== undefined) ranges.push(range)
  }
  // RFC 9110 §15.5.17: 416 only when none of the ranges overlaps the representation.
  if (ranges.length === 0) return { type: 'unsatisfiable' }
  if (ranges.length > maxRanges) return { type: 'full' }
  // The ranges stay in request order (RFC 9110 §15.3.7.2); overlap is found on a sorted copy.
  const sorted = ranges.length === 1 ? ranges : ranges.toSorted((a, b) => a.start - b.start)
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1]
    const current = sorted[i]
    // Overlapping or adjacent (no gap): RFC 9110 §14.2 lets us ignore the field.
    if (previous !== undefined && current !== undefined && current.start <= previous.end + 1) return { type: 'full' }
  }
  return { type: 'partial', ranges }
}

/**
 * RFC 9110 §14.1.1: a spec is satisfiable when its first-pos is below the size, or it is a
 * suffix with a non-zero length. `size` > 0 (an empty object is settled by the caller).
 */
function resolveSpec(spec: RangeSpec, size: number): ByteRange | undefined {
  switch (spec.kind) {
    case 'bounded':
      return spec.start < size ? { start: spec.start, end: Math.min(spec.end, size - 1) } : undefined
    case 'open-ended':
      return spec.start < size ? { start: spec.start, end: size - 1 } : undefined
    case 'suffix':
      // RFC 9110 §14.1.1: a suffix longer than the representation selects all of it.
      return spec.length > 0 ? { start: Math.max(0, size - spec.length), end: size - 1 } : undefined
  }
}

/**
 * The `Content-Range` value of a 206 (RFC 9110 §14.4).
 *
 * @example
 * contentRange({ start: 0, end: 99 }, 10000) // 'bytes 0-99/10000'
 */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`
}

/**
 * The `Content-Range` value of a 416 (RFC 9110 §14.4, §15.5.17).
 *
 * @example
 * unsatisfiedRange(10000) // 'bytes *\/10000'
 */
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`
}

/**
 * A random multipart boundary: 32 hex characters, well inside the 70 allowed by RFC 2046
 * §5.1.1 and, being random, never found inside the object's bytes in practice.
 *
 * @example
 * multipartBoundary() // '3f0c9a...'
 */
export function multipartBoundary(): string {
  return randomBytes(16).toString('hex')
}

export interface MultipartPart {
  range: ByteRange
  /** Bytes to send before the range's bytes: delimiter and part header block. */
  header: Uint8Array
}

export interface MultipartPlan {
  /** Value of the response's `Content-Type`: `multipart/byteranges; boundary=...`. */
  contentType: string
  parts: MultipartPart[]
  /** Bytes to send after the last part: the close delimiter. */
  trailer: Uint8Array
  /** Exact `Content-Length` of the whole body, known before streaming. */
  contentLength: number
}

/**
 * Lays out a `multipart/byteranges` body (RFC 9110 §14.6). Send, for each part, `header`
 * then the range's bytes; then `trailer`. The CRLF before each delimiter belongs to the
 * delimiter (RFC 2046 §5.1.1), so every part header but the first starts with CRLF.
 *
 * @example
 * const plan = multipartParts([{ start: 0, end: 9 }, { start: 90, end: 99 }], 100, 'text/plain', 'b0undary')
 * // plan.contentType === 'multipart/byteranges; boundary=b0undary'
 * // plan.contentLength === 20 + sum of the header and trailer byte lengths
 */
export function multipartParts(ranges: readonly ByteRange[], size: number, contentType: string, boundary: string): MultipartPlan {
  // The type becomes a header line: a CR or LF in it would let it inject headers.
  if (/[\r\n]/.test(contentType)) throw new TypeError('contentType must not contain CR or LF')
  // RFC 2046 §5.1.1 allows more characters, but these need no quoting in the parameter.
  if (!/^[0-9A-Za-z'+_.-]{1,70}$/.test(boundary)) throw new TypeError(`invalid multipart boundary: ${boundary}`)
  const encoder = new TextEncoder()
  let contentLength = 0
  const parts = ranges.map((range, index): MultipartPart => {
    const header = encoder.encode(
      `${index === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Range: ${contentRange(range, size)}\r\n\r\n`,
    )
    contentLength += header.byteLength + (range.end - range.start + 1)
    return { range, header }
  })
  const trailer = encoder.encode(`\r\n--${boundary}--\r\n`)
  contentLength += trailer.byteLength
  return { contentType: `multipart/byteranges; boundary=${boundary}`, parts, trailer, contentLength }
}
