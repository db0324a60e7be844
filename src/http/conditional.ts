/**
 * Conditional requests (RFC 9110 §13): preconditions, If-Range and HTTP dates. Pure: no I/O,
 * no framework types.
 *
 * Robustness policy: an empty field counts as absent; a malformed entity tag never matches
 * (so a garbled If-Match fails safe with 412 and a garbled If-None-Match serves 200); an
 * invalid date makes If-Modified-Since / If-Unmodified-Since ignored (RFC 9110 §13.1.3,
 * §13.1.4) and If-Range false, which only ever costs a full 200 instead of a 206.
 */
import { trimOws } from './ows.ts'

export type PreconditionResult = 'proceed' | 'not-modified' | 'precondition-failed'

/** Raw field values, as received. */
export interface ConditionalHeaders {
  ifMatch?: string | undefined
  ifNoneMatch?: string | undefined
  ifModifiedSince?: string | undefined
  ifUnmodifiedSince?: string | undefined
}

/** The current representation's validators. */
export interface Validators {
  /** Entity tag with its quotes, e.g. `"abc"` or `W/"abc"`. */
  etag?: string | undefined
  lastModified?: Date | undefined
}

interface EntityTag {
  weak: boolean
  opaque: string
}

// RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
const ENTITY_TAG = /^(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$/
const LIST_ELEMENT = /(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?=,|$)/y

function trimmed(value: string | undefined): string | undefined {
  const text = value === undefined ? undefined : trimOws(value)
  return text === '' ? undefined : text
}

function parseEntityTag(value: string): EntityTag | undefined {
  const match = ENTITY_TAG.exec(value)
  return match === null ? undefined : { weak: match[1] !== undefined, opaque: match[2] ?? '' }
}

/**
 * Parses `#entity-tag` (RFC 9110 §5.6.1 list). Commas may appear inside a quoted tag, so
 * this scans rather than splits; a malformed element is skipped up to the next comma.
 */
function parseEntityTagList(value: string): EntityTag[] {
  const tags: EntityTag[] = []
  let i = 0
  while (i < value.length) {
    const c = value[i]
    if (c === ' ' || c === '\t' || c === ',') {
      i++
      continue
    }
    LIST_ELEMENT.lastIndex = i
    const match = LIST_ELEMENT.exec(value)
    if (match !== null) {
      tags.push({ weak: match[1] !== undefined, opaque: match[2] ?? '' })
      i = LIST_ELEMENT.lastIndex
      continue
    }
    const comma = value.indexOf(',', i)
    if (comma < 0) break
    i = comma + 1
  }
  return tags
}

// RFC 9110 §8.8.3.2: strong comparison needs both tags strong; weak compares opaque-tags only.
function strongMatch(a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && a.opaque === b.opaque
}

function weakMatch(a: EntityTag, b: EntityTag): boolean {
  return a.opaque === b.opaque
}

/** HTTP dates have one-second resolution (RFC 9110 §5.6.7): compare whole seconds. */
function seconds(date: Date): number {
  return Math.floor(date.getTime() / 1000)
}

/**
 * Evaluates preconditions in the order of RFC 9110 §13.2.2 (steps 1-4; step 5, If-Range,
 * is `evaluateIfRange`). `current` is `null` when the object does not exist.
 *
 * RFC 9110 §13.2.1: preconditions are ignored when the unconditional response would not be
 * 2xx or 412, so a GET/HEAD of a missing object always proceeds (to its 404). A PUT of a
 * missing object would succeed, so its preconditions are evaluated: `If-Match: *` fails,
 * `If-None-Match: *` (create only) passes.
 *
 * @example
 * evaluatePreconditions('GET', { ifNoneMatch: '"v1"' }, { etag: '"v1"' }) // 'not-modified'
 * evaluatePreconditions('PUT', { ifNoneMatch: '*' }, { etag: '"v1"' }) // 'precondition-failed'
 * evaluatePreconditions('PUT', { ifMatch: '"v1"' }, null) // 'precondition-failed'
 */
export function evaluatePreconditions(
  method: 'GET' | 'HEAD' | 'PUT',
  headers: ConditionalHeaders,
  current: Validators | null,
): PreconditionResult {
  if (current === null && method !== 'PUT') return 'proceed'
  const etag = current?.etag === undefined ? undefined : parseEntityTag(current.etag)
  const lastModified = current?.lastModified
  const ifMatch = trimmed(headers.ifMatch)
  const ifNoneMatch = trimmed(headers.ifNoneMatch)

  if (ifMatch !== undefined) {
    // Step 1, RFC 9110 §13.1.1: `*` is true when a representation exists; otherwise strong
    // comparison against any listed tag.
    const matched =
      current !== null &&
      (ifMatch === '*' || (etag !== undefined && parseEntityTagList(ifMatch).some((tag) => strongMatch(tag, etag))))
    if (!matched) return 'precondition-failed'
  } else {
    // Step 2, RFC 9110 §13.1.4: only without If-Match; ignored when the date is invalid or the
    // representation has no modification date. True when Last-Modified <= the date.
    const date = parseHttpDate(headers.ifUnmodifiedSince)
    if (date !== undefined && lastModified !== undefined && seconds(lastModified) > seconds(date)) {
      return 'precondition-failed'
    }
  }

  if (ifNoneMatch !== undefined) {
    // Step 3, RFC 9110 §13.1.2: false when `*` and a representation exists, or when any listed
    // tag matches by weak comparison. False → 304 for GET/HEAD, 412 for anything else.
    const matched =
      current !== null &&
      (ifNoneMatch === '*' || (etag !== undefined && parseEntityTagList(ifNoneMatch).some((tag) => weakMatch(tag, etag))))
    if (matched) return method === 'PUT' ? 'precondition-failed' : 'not-modified'
  } else if (method !== 'PUT') {
    // Step 4, RFC 9110 §13.1.3: GET/HEAD only, only without If-None-Match, ignored when the
    // date is invalid or there is no Last-Modified. False (not modified) when Last-Modified <= date.
    const date = parseHttpDate(headers.ifModifiedSince)
    if (date !== undefined && lastModified !== undefined && seconds(lastModified) <= seconds(date)) {
      return 'not-modified'
    }
  }
  return 'proceed'
}

/**
 * Evaluates `If-Range` (RFC 9110 §13.1.5): true means honour the Range field, false means
 * serve the full representation with 200. Absent (or empty) → true.
 *
 * An entity tag matches only by strong comparison, so a weak tag never does. A date matches
 * only when it equals Last-Modified exactly (at HTTP's one-second resolution); a malformed
 * value never matches.
 *
 * @example
 * evaluateIfRange('"v1"', { etag: '"v1"' }) // true
 * evaluateIfRange('W/"v1"', { etag: '"v1"' }) // false
 * evaluateIfRange('Sun, 06 Nov 1994 08:49:37 GMT', { lastModified: new Date('1994-11-06T08:49:37Z') }) // true
 */
export function evaluateIfRange(ifRange: string | undefined, current: Validators): boolean {
  const value = trimmed(ifRange)
  if (value === undefined) return true
  if (value.startsWith('"') || value.startsWith('W/')) {
    const tag = parseEntityTag(value)
    const etag = current.etag === undefined ? undefined : parseEntityTag(current.etag)
    return tag !== undefined && etag !== undefined && strongMatch(tag, etag)
  }
  const date = parseHttpDate(value)
  return date !== undefined && current.lastModified !== undefined && seconds(date) === seconds(current.lastModified)
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const DAY = DAYS.join('|')
const LONG_DAY = 'Sunday|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday'
const MONTH = MONTHS.join('|')
const TIME = String.raw`(\d\d):(\d\d):(\d\d)`
// RFC 9110 §5.6.7: IMF-fixdate, plus the obsolete rfc850-date and asctime-date forms that a
// recipient MUST accept. Names are case-sensitive there (%s"Mon"); so are they here.
const IMF_FIXDATE = new RegExp(`^(?:${DAY}), (\\d\\d) (${MONTH}) (\\d{4}) ${TIME} GMT$`)
const RFC850_DATE = new RegExp(`^(?:${LONG_DAY}), (\\d\\d)-(${MONTH})-(\\d\\d) ${TIME} GMT$`)
const ASCTIME_DATE = new RegExp(`^(?:${DAY}) (${MONTH}) ([ \\d]\\d) ${TIME} (\\d{4})$`)

/**
 * Formats a date as IMF-fixdate (RFC 9110 §5.6.7), dropping milliseconds.
 *
 * @example
 * httpDate(new Date('1994-11-06T08:49:37.250Z')) // 'Sun, 06 Nov 1994 08:49:37 GMT'
 */
export function httpDate(date: Date): string {
  let text = formatted.get(date)
  if (text === undefined) {
    if (Number.isNaN(date.getTime())) throw new RangeError('httpDate: invalid Date')
    // ECMA-262 specifies Date.prototype.toUTCString as exactly the IMF-fixdate layout.
    text = date.toUTCString()
    formatted.set(date, text)
  }
  return text
}

/** Each cached object's Last-Modified is formatted once, not on every response. */
const formatted = new WeakMap<Date, string>()

/**
 * Parses an HTTP-date in any of the three forms of RFC 9110 §5.6.7; anything else (including
 * what a lenient `Date.parse` would accept, like `'1'`) is `undefined`. A weekday that does not
 * match the date is tolerated, as the day name carries no information.
 *
 * @example
 * parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT') // 1994-11-06T08:49:37.000Z
 * parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT') // 1994-11-06T08:49:37.000Z
 * parseHttpDate('Sun Nov  6 08:49:37 1994') // 1994-11-06T08:49:37.000Z
 * parseHttpDate('yesterday') // undefined
 */
export function parseHttpDate(value: string | undefined, now?: Date): Date | undefined {
  const text = trimmed(value)
  if (text === undefined) return undefined
  let match = IMF_FIXDATE.exec(text)
  if (match !== null) {
    const [, day, month, year, h, m, s] = match
    return makeDate(Number(year), month, Number(day), h, m, s)
  }
  match = RFC850_DATE.exec(text)
  if (match !== null) {
    const [, day, month, yy, h, m, s] = match
    // RFC 9110 §5.6.7: a two-digit year more than 50 years in the future means the most
    // recent past year with the same last two digits.
    const thisYear = (now ?? new Date()).getUTCFullYear()
    let year = thisYear - (thisYear % 100) + Number(yy)
    if (year > thisYear + 50) year -= 100
    return makeDate(year, month, Number(day), h, m, s)
  }
  match = ASCTIME_DATE.exec(text)
  if (match !== null) {
    const [, month, day, h, m, s, year] = match
    return makeDate(Number(year), month, Number(day?.trim()), h, m, s)
  }
  return undefined
}

function makeDate(
  year: number,
  monthName: string | undefined,
  day: number,
  hour: string | undefined,
  minute: string | undefined,
  second: string | undefined,
): Date | undefined {
  const month = MONTHS.indexOf(monthName ?? '')
  const h = Number(hour)
  const m = Number(minute)
  const s = Number(second)
  // RFC 9110 §5.6.7: second may be 60 (leap second); the Date rolls it into the next minute.
  if (month < 0 || day < 1 || h > 23 || m > 59 || s > 60) return undefined
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const date = new Date(0)
  date.setUTCFullYear(year, month, day)
  if (date.getUTCMonth() !== month) return undefined // 31 Feb and friends rolled over
  date.setUTCHours(h, m, s, 0)
  return date
}
