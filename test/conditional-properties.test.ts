/**
 * Properties of the precondition evaluator and HTTP-date parser (src/http/conditional.ts),
 * each one a rule of RFC 9110 §13 or §5.6.7, over generated entity-tag lists and dates.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { type ConditionalHeaders, type Validators, evaluateIfRange, evaluatePreconditions, httpDate, parseHttpDate } from '../src/http/conditional.ts'

const RUNS = { numRuns: 500 }

interface Tag {
  weak: boolean
  opaque: string
}

// RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text (commas included: lists must not split on them).
const etagc = fc.oneof(fc.integer({ min: 0x21, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff })).filter((c) => c !== 0x22).map((c) => String.fromCharCode(c))
/** Short opaque-tags from a small alphabet collide often; the others are anything valid. */
const opaque = fc.oneof(fc.string({ unit: fc.constantFrom('a', 'b', ','), maxLength: 3 }), fc.string({ unit: etagc, maxLength: 12 }))
const tag: fc.Arbitrary<Tag> = fc.record({ weak: fc.boolean(), opaque })
const write = (t: Tag) => `${t.weak ? 'W/' : ''}"${t.opaque}"`
const ows = fc.constantFrom('', ' ', '\t ')
/** A `#entity-tag` field value (RFC 9110 §5.6.1 list) of the given tags. */
const list = (tags: Tag[]) => fc.array(fc.tuple(ows, ows), { minLength: tags.length, maxLength: tags.length }).map((pads) => tags.map((t, i) => `${pads[i]![0]}${write(t)}${pads[i]![1]}`).join(','))
const tagsAndField = fc.array(tag, { minLength: 1, maxLength: 5 }).chain((tags) => fc.tuple(fc.constant(tags), list(tags)))

const method = fc.constantFrom('GET' as const, 'HEAD' as const, 'PUT' as const)
const readMethod = fc.constantFrom('GET' as const, 'HEAD' as const)
/** Dates HTTP can write (four-digit years), at millisecond precision. */
const date = fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true })
/** Two dates often within a second or two of each other. */
const nearDates = fc.tuple(date, fc.integer({ min: -3000, max: 3000 })).map(([a, ms]) => [a, new Date(Math.min(Math.max(a.getTime() + ms, -62135596800000), 253402300799999))] as const)
const seconds = (d: Date) => Math.floor(d.getTime() / 1000)
/** Any field value at all: garbage, dates, tags, `*`. */
const anyField = fc.option(fc.oneof(fc.string(), date.map(httpDate), tag.map(write), fc.constant('*')), { nil: undefined })
const anyHeaders: fc.Arbitrary<ConditionalHeaders> = fc.record({ ifMatch: anyField, ifNoneMatch: anyField, ifModifiedSince: anyField, ifUnmodifiedSince: anyField })
const current: fc.Arbitrary<Validators> = fc.record({ etag: fc.option(tag.map(write), { nil: undefined }), lastModified: fc.option(date, { nil: undefined }) })

describe('precondition properties (RFC 9110 §13)', () => {
  test('RFC 9110 §8.8.3.2, §13.1.1: If-Match proceeds exactly when some listed tag is a strong match of the current one', () => {
    fc.assert(
      fc.property(tagsAndField, tag, method, ([tags, field], etag, m) => {
        const strong = tags.some((t) => !t.weak && !etag.weak && t.opaque === etag.opaque)
        assert.equal(evaluatePreconditions(m, { ifMatch: field }, { etag: write(etag) }), strong ? 'proceed' : 'precondition-failed')
      }),
      RUNS,
    )
  })

  test('RFC 9110 §8.8.3.2, §13.1.2: If-None-Match fails exactly when some listed tag is a weak match: 304 for GET/HEAD, 412 for PUT', () => {
    fc.assert(
      fc.property(tagsAndField, tag, method, ([tags, field], etag, m) => {
        const weak = tags.some((t) => t.opaque === etag.opaque)
        const failed = m === 'PUT' ? 'precondition-failed' : 'not-modified'
        assert.equal(evaluatePreconditions(m, { ifNoneMatch: field }, { etag: write(etag) }), weak ? failed : 'proceed')
      }),
      RUNS,
    )
  })

  test('RFC 9110 §13.2.1: a GET or HEAD of a missing object proceeds (to its 404), whatever its preconditions', () => {
    fc.assert(
      fc.property(readMethod, anyHeaders, (m, headers) => assert.equal(evaluatePreconditions(m, headers, null), 'proceed')),
      RUNS,
    )
  })

  test('RFC 9110 §13.1.3: If-Modified-Since answers 304 exactly when Last-Modified is not after the date, at one-second resolution', () => {
    fc.assert(
      fc.property(readMethod, nearDates, (m, [lastModified, since]) => {
        const expected = seconds(lastModified) <= seconds(since) ? 'not-modified' : 'proceed'
        assert.equal(evaluatePreconditions(m, { ifModifiedSince: httpDate(since) }, { lastModified }), expected)
      }),
      RUNS,
    )
  })

  test('RFC 9110 §13.1.4: If-Unmodified-Since answers 412 exactly when Last-Modified is after the date, at one-second resolution', () => {
    fc.assert(
      fc.property(method, nearDates, (m, [lastModified, since]) => {
        const expected = seconds(lastModified) > seconds(since) ? 'precondition-failed' : 'proceed'
        assert.equal(evaluatePreconditions(m, { ifUnmodifiedSince: httpDate(since) }, { lastModified }), expected)
      }),
      RUNS,
    )
  })

  test('RFC 9110 §13.2.2 steps 2 and 4: If-Unmodified-Since is ignored when If-Match is present, If-Modified-Since when If-None-Match is', () => {
    fc.assert(
      fc.property(method, anyHeaders, current, (m, headers, validators) => {
        const without = { ...headers }
        if (headers.ifMatch?.trim()) delete without.ifUnmodifiedSince
        if (headers.ifNoneMatch?.trim()) delete without.ifModifiedSince
        assert.equal(evaluatePreconditions(m, headers, validators), evaluatePreconditions(m, without, validators))
      }),
      RUNS,
    )
  })

  test('RFC 9110 §13.1.5: If-Range holds for a strong match of the ETag, or for exactly the second of Last-Modified; never for a weak tag', () => {
    fc.assert(
      fc.property(tag, tag, nearDates, fc.boolean(), (asked, etag, [lastModified, when], byDate) => {
        const validators = { etag: write(etag), lastModified }
        if (byDate) assert.equal(evaluateIfRange(httpDate(when), validators), seconds(when) === seconds(lastModified))
        else assert.equal(evaluateIfRange(write(asked), validators), !asked.weak && !etag.weak && asked.opaque === etag.opaque)
      }),
      RUNS,
    )
  })
})

describe('HTTP-date properties (RFC 9110 §5.6.7)', () => {
  const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
  const two = (n: number) => String(n).padStart(2, '0')
  const clock = (d: Date) => `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`

  test('RFC 9110 §5.6.7: an IMF-fixdate as written by httpDate reads back as the same second', () => {
    fc.assert(
      fc.property(date, (d) => {
        const text = httpDate(d)
        assert.match(text, /^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/)
        assert.equal(parseHttpDate(text)?.getTime(), seconds(d) * 1000)
      }),
      RUNS,
    )
  })

  test('RFC 9110 §5.6.7: the obsolete rfc850-date and asctime-date forms name the same instant as the IMF-fixdate', () => {
    fc.assert(
      fc.property(date, (d) => {
        const day = DAYS[d.getUTCDay()]!
        const month = MONTHS[d.getUTCMonth()]!
        const year = d.getUTCFullYear()
        const rfc850 = `${day}, ${two(d.getUTCDate())}-${month}-${two(year % 100)} ${clock(d)} GMT`
        const asctime = `${day.slice(0, 3)} ${month} ${String(d.getUTCDate()).padStart(2, ' ')} ${clock(d)} ${String(year).padStart(4, '0')}`
        // A two-digit year is read within 50 years of "now": take now in the date's own year.
        assert.equal(parseHttpDate(rfc850, d)?.getTime(), seconds(d) * 1000, rfc850)
        assert.equal(parseHttpDate(asctime)?.getTime(), seconds(d) * 1000, asctime)
      }),
      RUNS,
    )
  })

  test('RFC 9110 §5.6.7: a two-digit rfc850 year is never read as more than 50 years in the future', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 99 }), fc.integer({ min: 1900, max: 9900 }), (yy, nowYear) => {
        const now = new Date(Date.UTC(nowYear, 5, 15))
        const year = parseHttpDate(`Sunday, 01-Jan-${two(yy)} 00:00:00 GMT`, now)!.getUTCFullYear()
        assert.equal(year % 100, yy)
        assert.ok(year <= nowYear + 50 && year > nowYear - 100, `${yy} read as ${year} in ${nowYear}`)
      }),
      RUNS,
    )
  })

  test('RFC 9110 §5.6.7: any field value is a whole-second date or invalid (ignored), never an exception', () => {
    const near = date.map((d) => httpDate(d).replace(/\d/g, (c) => (c === '0' ? '9' : c)))
    fc.assert(
      fc.property(fc.oneof(fc.string(), near), (text) => {
        const parsed = parseHttpDate(text)
        if (parsed !== undefined) assert.ok(Number.isInteger(parsed.getTime() / 1000), text)
      }),
      RUNS,
    )
  })
})
