import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  evaluateIfRange,
  evaluatePreconditions,
  httpDate,
  parseHttpDate,
} from '../src/http/conditional.ts'
import type { ConditionalHeaders, PreconditionResult, Validators } from '../src/http/conditional.ts'

const LM = new Date('2024-05-01T12:00:00.750Z') // sub-second part: HTTP dates drop it
const AT = 'Wed, 01 May 2024 12:00:00 GMT' // = LM at one-second resolution
const BEFORE = 'Wed, 01 May 2024 11:59:59 GMT'
const AFTER = 'Wed, 01 May 2024 12:00:01 GMT'
const OBJ: Validators = { etag: '"v1"', lastModified: LM }
const WEAK_OBJ: Validators = { etag: 'W/"v1"', lastModified: LM }
const NO_VALIDATORS: Validators = {}

type Method = 'GET' | 'HEAD' | 'PUT'

const cases: Array<[name: string, method: Method, headers: ConditionalHeaders, current: Validators | null, expected: PreconditionResult]> = [
  ['no preconditions', 'GET', {}, OBJ, 'proceed'],
  // Step 1: If-Match (strong)
  ['If-Match equal', 'GET', { ifMatch: '"v1"' }, OBJ, 'proceed'],
  ['If-Match different', 'GET', { ifMatch: '"v2"' }, OBJ, 'precondition-failed'],
  ['If-Match in a list', 'PUT', { ifMatch: '"v0", "v1"' }, OBJ, 'proceed'],
  ['If-Match weak tag never matches', 'GET', { ifMatch: 'W/"v1"' }, OBJ, 'precondition-failed'],
  ['If-Match on a weak current tag', 'GET', { ifMatch: '"v1"' }, WEAK_OBJ, 'precondition-failed'],
  ['If-Match * on an existing object', 'PUT', { ifMatch: '*' }, OBJ, 'proceed'],
  ['If-Match * on a missing object (PUT)', 'PUT', { ifMatch: '*' }, null, 'precondition-failed'],
  ['If-Match tag on a missing object (PUT)', 'PUT', { ifMatch: '"v1"' }, null, 'precondition-failed'],
  ['If-Match * on a missing object (GET → 404)', 'GET', { ifMatch: '*' }, null, 'proceed'],
  ['If-Match on an object without ETag', 'PUT', { ifMatch: '"v1"' }, NO_VALIDATORS, 'precondition-failed'],
  ['If-Match unquoted (malformed) fails safe', 'PUT', { ifMatch: 'v1' }, OBJ, 'precondition-failed'],
  ['If-Match malformed element skipped', 'PUT', { ifMatch: 'junk, "v1"' }, OBJ, 'proceed'],
  ['If-Match comma inside a tag', 'PUT', { ifMatch: '"v1,v2"' }, { etag: '"v1,v2"' }, 'proceed'],
  ['If-Match empty counts as absent', 'PUT', { ifMatch: ' ' }, OBJ, 'proceed'],
  // Step 2: If-Unmodified-Since
  ['If-Unmodified-Since same second', 'PUT', { ifUnmodifiedSince: AT }, OBJ, 'proceed'],
  ['If-Unmodified-Since after', 'GET', { ifUnmodifiedSince: AFTER }, OBJ, 'proceed'],
  ['If-Unmodified-Since before', 'GET', { ifUnmodifiedSince: BEFORE }, OBJ, 'precondition-failed'],
  ['If-Unmodified-Since before (PUT)', 'PUT', { ifUnmodifiedSince: BEFORE }, OBJ, 'precondition-failed'],
  ['If-Unmodified-Since invalid date ignored', 'GET', { ifUnmodifiedSince: 'yesterday' }, OBJ, 'proceed'],
  ['If-Unmodified-Since without Last-Modified ignored', 'GET', { ifUnmodifiedSince: BEFORE }, { etag: '"v1"' }, 'proceed'],
  ['If-Match beats If-Unmodified-Since', 'PUT', { ifMatch: '"v1"', ifUnmodifiedSince: BEFORE }, OBJ, 'proceed'],
  ['If-Match failure wins too', 'PUT', { ifMatch: '"v2"', ifUnmodifiedSince: AFTER }, OBJ, 'precondition-failed'],
  // Step 3: If-None-Match (weak)
  ['If-None-Match equal (GET)', 'GET', { ifNoneMatch: '"v1"' }, OBJ, 'not-modified'],
  ['If-None-Match equal (HEAD)', 'HEAD', { ifNoneMatch: '"v1"' }, OBJ, 'not-modified'],
  ['If-None-Match different', 'GET', { ifNoneMatch: '"v2"' }, OBJ, 'proceed'],
  ['If-None-Match weak tag matches weakly', 'GET', { ifNoneMatch: 'W/"v1"' }, OBJ, 'not-modified'],
  ['If-None-Match strong tag vs weak current', 'GET', { ifNoneMatch: '"v1"' }, WEAK_OBJ, 'not-modified'],
  ['If-None-Match list', 'GET', { ifNoneMatch: '"a", W/"b",  "v1"' }, OBJ, 'not-modified'],
  ['If-None-Match * on an existing object (GET)', 'GET', { ifNoneMatch: '*' }, OBJ, 'not-modified'],
  ['If-None-Match * create-only PUT on an existing object', 'PUT', { ifNoneMatch: '*' }, OBJ, 'precondition-failed'],
  ['If-None-Match * create-only PUT on a missing object', 'PUT', { ifNoneMatch: '*' }, null, 'proceed'],
  ['If-None-Match tag on PUT', 'PUT', { ifNoneMatch: '"v1"' }, OBJ, 'precondition-failed'],
  ['If-None-Match unquoted (malformed) never matches', 'GET', { ifNoneMatch: 'v1' }, OBJ, 'proceed'],
  ['If-None-Match unterminated quote', 'GET', { ifNoneMatch: '"v1' }, OBJ, 'proceed'],
  ['If-None-Match lowercase w/ is not a weak prefix', 'GET', { ifNoneMatch: 'w/"v1"' }, OBJ, 'proceed'],
  ['If-None-Match beats If-Modified-Since (no match)', 'GET', { ifNoneMatch: '"v2"', ifModifiedSince: AFTER }, OBJ, 'proceed'],
  ['If-None-Match beats If-Modified-Since (match)', 'GET', { ifNoneMatch: '"v1"', ifModifiedSince: BEFORE }, OBJ, 'not-modified'],
  ['If-Match passes, then If-None-Match', 'GET', { ifMatch: '"v1"', ifNoneMatch: '"v1"' }, OBJ, 'not-modified'],
  ['If-Unmodified-Since fails before If-None-Match', 'GET', { ifUnmodifiedSince: BEFORE, ifNoneMatch: '"v1"' }, OBJ, 'precondition-failed'],
  // Step 4: If-Modified-Since (GET/HEAD only)
  ['If-Modified-Since same second (sub-second Last-Modified)', 'GET', { ifModifiedSince: AT }, OBJ, 'not-modified'],
  ['If-Modified-Since after', 'HEAD', { ifModifiedSince: AFTER }, OBJ, 'not-modified'],
  ['If-Modified-Since before', 'GET', { ifModifiedSince: BEFORE }, OBJ, 'proceed'],
  ['If-Modified-Since invalid date ignored', 'GET', { ifModifiedSince: '1' }, OBJ, 'proceed'],
  ['If-Modified-Since obsolete RFC 850 form', 'GET', { ifModifiedSince: 'Wednesday, 01-May-24 12:00:00 GMT' }, OBJ, 'not-modified'],
  ['If-Modified-Since obsolete asctime form', 'GET', { ifModifiedSince: 'Wed May  1 12:00:00 2024' }, OBJ, 'not-modified'],
  ['If-Modified-Since ignored on PUT', 'PUT', { ifModifiedSince: AFTER }, OBJ, 'proceed'],
  ['If-Modified-Since without Last-Modified ignored', 'GET', { ifModifiedSince: AFTER }, { etag: '"v1"' }, 'proceed'],
  ['If-Modified-Since on a missing object (GET → 404)', 'GET', { ifModifiedSince: AFTER }, null, 'proceed'],
]

describe('evaluatePreconditions (RFC 9110 §13.2.2)', () => {
  for (const [name, method, headers, current, expected] of cases) {
    test(`${name}: ${method} → ${expected}`, () => {
      assert.equal(evaluatePreconditions(method, headers, current), expected)
    })
  }
})

const ifRangeCases: Array<[ifRange: string | undefined, current: Validators, expected: boolean]> = [
  [undefined, OBJ, true],
  ['', OBJ, true],
  ['"v1"', OBJ, true],
  ['"v2"', OBJ, false],
  ['W/"v1"', OBJ, false], // weak never matches
  ['"v1"', WEAK_OBJ, false], // nor does a weak current tag
  ['"v1"', { lastModified: LM }, false], // no ETag to compare with
  ['"v1", "v2"', OBJ, false], // a list is not allowed here
  ['v1', OBJ, false], // malformed
  [AT, OBJ, true], // equal at one-second resolution
  [BEFORE, OBJ, false],
  [AFTER, OBJ, false], // a later date does not match either: equality only
  [AT, { etag: '"v1"' }, false], // no Last-Modified
  ['not a date', OBJ, false],
]

describe('evaluateIfRange (RFC 9110 §13.1.5)', () => {
  for (const [ifRange, current, expected] of ifRangeCases) {
    test(`${JSON.stringify(ifRange)} vs ${JSON.stringify(current)} → ${expected}`, () => {
      assert.equal(evaluateIfRange(ifRange, current), expected)
    })
  }
})

describe('HTTP dates (RFC 9110 §5.6.7)', () => {
  const when = new Date('1994-11-06T08:49:37Z')
  const now = new Date('2025-01-01T00:00:00Z')
  const parses: Array<[input: string | undefined, expected: Date | undefined]> = [
    ['Sun, 06 Nov 1994 08:49:37 GMT', when],
    ['Sunday, 06-Nov-94 08:49:37 GMT', when],
    ['Sun Nov  6 08:49:37 1994', when],
    ['  Sun, 06 Nov 1994 08:49:37 GMT ', when], // OWS around the value
    ['Mon, 06 Nov 1994 08:49:37 GMT', when], // wrong weekday tolerated
    ['Friday, 01-Jan-27 00:00:00 GMT', new Date('2027-01-01T00:00:00Z')], // within 50 years
    ['Friday, 01-Jan-99 00:00:00 GMT', new Date('1999-01-01T00:00:00Z')], // 2099 is > 50 years ahead
    ['Wed, 31 Dec 2025 23:59:60 GMT', new Date('2026-01-01T00:00:00Z')], // leap second
    ['Sun, 06 Nov 1994 08:49:37 UTC', undefined],
    ['sun, 06 nov 1994 08:49:37 GMT', undefined], // names are case-sensitive
    ['Sun, 6 Nov 1994 08:49:37 GMT', undefined],
    ['Sun, 31 Feb 1994 08:49:37 GMT', undefined],
    ['Sun, 06 Nov 1994 24:00:00 GMT', undefined],
    ['1994-11-06T08:49:37Z', undefined],
    ['784111777', undefined],
    ['1', undefined],
    ['', undefined],
    [undefined, undefined],
  ]
  for (const [input, expected] of parses) {
    test(`parseHttpDate(${JSON.stringify(input)})`, () => {
      assert.deepEqual(parseHttpDate(input, now), expected)
    })
  }

  test('httpDate writes IMF-fixdate without milliseconds, and round-trips', () => {
    assert.equal(httpDate(new Date('1994-11-06T08:49:37.999Z')), 'Sun, 06 Nov 1994 08:49:37 GMT')
    assert.equal(httpDate(new Date('2024-05-01T00:00:00Z')), 'Wed, 01 May 2024 00:00:00 GMT')
    assert.deepEqual(parseHttpDate(httpDate(when)), when)
    assert.throws(() => httpDate(new Date(Number.NaN)), RangeError)
  })
})
