/**
 * Properties of `Range` parsing and resolution (src/http/range.ts), each one a rule of
 * RFC 9110 §14. The examples in range.test.ts pin the edge cases; these check the rules over
 * generated fields: request-order, whitespace, case, leading zeros, numerals past 2^53.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { type RangeSpec, type ResolvedRange, DEFAULT_MAX_RANGES, multipartParts, parseRange, resolveRanges } from '../src/http/range.ts'
import type { ByteRange } from '../src/stores/types.ts'

const RUNS = { numRuns: 500 }

/** Object sizes: empty, tiny (so ranges often clash), and large. */
const size = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 2 ** 40 }))

/** Specs for an object of `n` bytes: mostly short ones inside or just past it, some huge. */
function specsFor(n: number): fc.Arbitrary<RangeSpec[]> {
  const position = fc.oneof({ arbitrary: fc.nat({ max: n + 2 }), weight: 5 }, { arbitrary: fc.maxSafeNat(), weight: 1 })
  const length = fc.oneof({ arbitrary: fc.nat({ max: Math.max(1, Math.floor(n / 16)) }), weight: 5 }, { arbitrary: fc.maxSafeNat(), weight: 1 })
  const spec = fc.oneof(
    { arbitrary: fc.tuple(position, length).map(([start, l]): RangeSpec => ({ kind: 'bounded', start, end: Math.min(start + l, Number.MAX_SAFE_INTEGER) })), weight: 6 },
    { arbitrary: position.map((start): RangeSpec => ({ kind: 'open-ended', start })), weight: 1 },
    { arbitrary: length.map((l): RangeSpec => ({ kind: 'suffix', length: l })), weight: 1 },
  )
  return fc.array(spec, { minLength: 1, maxLength: 10 })
}
/** A size and specs for it. */
const request = size.chain((n) => fc.tuple(specsFor(n), fc.constant(n)))
const specs = size.chain(specsFor)

/** A digit string with 0-2 leading zeros (RFC 9110 §14.1.1: first-pos = 1*DIGIT). */
const digits = (n: number | bigint) => fc.nat({ max: 2 }).map((zeros) => '0'.repeat(zeros) + String(n))
const ows = fc.constantFrom('', ' ', '\t', ' \t ')

/** Writes specs as a `Range` field: any unit case, list OWS and empty elements (RFC 9110 §5.6.1). */
function rangeField(list: RangeSpec[]): fc.Arbitrary<string> {
  const texts = list.map((s) =>
    s.kind === 'bounded'
      ? fc.tuple(digits(s.start), digits(s.end)).map(([a, b]) => `${a}-${b}`)
      : s.kind === 'open-ended'
        ? digits(s.start).map((a) => `${a}-`)
        : digits(s.length).map((b) => `-${b}`),
  )
  const separator = fc.tuple(ows, fc.constantFrom(',', ',', ', ,'), ows).map((parts) => parts.join(''))
  return fc
    .tuple(fc.constantFrom('bytes', 'BYTES', 'Bytes', 'bYtEs'), fc.tuple(...texts), fc.array(separator, { minLength: list.length, maxLength: list.length }))
    .map(([unit, elements, separators]) => `${unit}=${elements.map((element, i) => (i === 0 ? element : separators[i]! + element)).join('')}`)
}

/** RFC 9110 §14.1.2, read literally: the bytes a spec selects from `size` bytes, if any. */
function selected(s: RangeSpec, size: number): ByteRange | undefined {
  if (s.kind === 'suffix') return s.length > 0 && size > 0 ? { start: Math.max(0, size - s.length), end: size - 1 } : undefined
  if (s.start >= size) return undefined
  return { start: s.start, end: s.kind === 'bounded' ? Math.min(s.end, size - 1) : size - 1 }
}

const overlapOrTouch = (a: ByteRange, b: ByteRange) => a.start <= b.end + 1 && b.start <= a.end + 1
const resolve = (list: RangeSpec[], size: number): ResolvedRange => resolveRanges({ type: 'ranges', specs: list }, size)

describe('Range properties (RFC 9110 §14)', () => {
  test('RFC 9110 §14.1.1, §5.6.1: a bytes range-set parses to its specs in request order, whatever the unit case, list OWS, empty elements and leading zeros', () => {
    fc.assert(
      fc.property(
        specs.chain((list) => fc.tuple(fc.constant(list), rangeField(list))),
        ([list, field]) => assert.deepEqual(parseRange(field), { type: 'ranges', specs: list }),
      ),
      RUNS,
    )
  })

  test('RFC 9110 §14.2: a Range field with a unit other than bytes is ignored (200)', () => {
    const unit = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,8}$/).filter((u) => u.toLowerCase() !== 'bytes')
    fc.assert(
      fc.property(unit, specs.chain(rangeField), (u, field) => assert.deepEqual(parseRange(field.replace(/^bytes/i, u)), { type: 'none' })),
      RUNS,
    )
  })

  test('RFC 9110 §14.2: any field value is either honoured as a valid range-set or ignored, never an exception', () => {
    const noise = fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom('b', 'y', 't', 'e', 's', '=', '-', ',', ' ', '0', '1', '9') }))
    fc.assert(
      fc.property(noise, size, (field, n) => {
        const parsed = parseRange(field)
        if (parsed.type === 'ranges') assert.match(field, /^[ \t]*bytes[ \t]*=[ \t,]*\d*-\d*([ \t]*,[ \t,]*(\d*-\d*)?)*[ \t,]*$/i)
        resolveRanges(parsed, n)
      }),
      RUNS,
    )
  })

  test('RFC 9110 §14.1.1: numerals of any length parse exactly; first-pos > last-pos is invalid (ignored), decided without overflow', () => {
    const big = fc.bigInt({ min: 0n, max: 10n ** 30n })
    fc.assert(
      fc.property(big, big, fc.integer({ min: 1, max: 2 ** 40 }), (first, last, n) => {
        const resolved = resolveRanges(parseRange(`bytes=${first}-${last}`), n)
        if (first > last) assert.deepEqual(resolved, { type: 'full' })
        else if (first >= BigInt(n)) assert.deepEqual(resolved, { type: 'unsatisfiable' })
        else assert.deepEqual(resolved, { type: 'partial', ranges: [{ start: Number(first), end: Number(last < BigInt(n) ? last : BigInt(n - 1)) }] })
      }),
      RUNS,
    )
  })

  test('RFC 9110 §14.1.2, §14.4: every range sent lies inside the representation: 0 <= first <= last < size', () => {
    fc.assert(
      fc.property(request, ([list, n]) => {
        const resolved = resolve(list, n)
        if (resolved.type !== 'partial') return
        for (const r of resolved.ranges) assert.ok(Number.isSafeInteger(r.start) && r.start >= 0 && r.start <= r.end && r.end < n, `${r.start}-${r.end}/${n}`)
      }),
      RUNS,
    )
  })

  test('RFC 9110 §15.5.17, §14.1.2: 416 exactly when no range is satisfiable; on an empty object only a non-zero suffix is, and it is served as 200', () => {
    fc.assert(
      fc.property(request, ([list, n]) => {
        const resolved = resolve(list, n)
        const satisfiable = n === 0 ? list.some((s) => s.kind === 'suffix' && s.length > 0) : list.some((s) => selected(s, n) !== undefined)
        assert.equal(resolved.type === 'unsatisfiable', !satisfiable)
        if (n === 0 && satisfiable) assert.deepEqual(resolved, { type: 'full' })
      }),
      RUNS,
    )
  })

  test('RFC 9110 §14.1.2, §15.3.7.2: the parts are the bytes each satisfiable spec selects, in request order', () => {
    fc.assert(
      fc.property(request, ([list, n]) => {
        const resolved = resolve(list, n)
        if (resolved.type !== 'partial') return
        assert.deepEqual(resolved.ranges, list.map((s) => selected(s, n)).filter((r) => r !== undefined))
      }),
      RUNS,
    )
  })

  test('RFC 9110 §14.2, §17.15: ranges that overlap or touch, or more than maxRanges, are ignored (200); otherwise they are all honoured', () => {
    fc.assert(
      fc.property(request, ([list, n]) => {
        const wanted = list.map((s) => selected(s, n)).filter((r) => r !== undefined)
        if (wanted.length === 0) return
        const clash = wanted.some((a, i) => wanted.some((b, j) => i < j && overlapOrTouch(a, b)))
        const resolved = resolve(list, n)
        assert.equal(resolved.type, clash || wanted.length > DEFAULT_MAX_RANGES ? 'full' : 'partial')
      }),
      RUNS,
    )
  })

  test('RFC 9110 §14.6: a multipart/byteranges Content-Length is the exact length of the body, parts in the order given', () => {
    const layout = fc
      .array(fc.tuple(fc.nat({ max: 50 }), fc.nat({ max: 50 })), { minLength: 1, maxLength: 8 })
      .map((pairs) => pairs.map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) })))
    const type = fc.string({ unit: 'grapheme', maxLength: 20 }).filter((t) => !/[\r\n]/.test(t))
    fc.assert(
      fc.property(layout, type, fc.stringMatching(/^[0-9A-Za-z'+_.-]{1,70}$/), (ranges, contentType, boundary) => {
        const plan = multipartParts(ranges, 51, contentType, boundary)
        const body = Buffer.concat([...plan.parts.flatMap((part) => [part.header, Buffer.alloc(part.range.end - part.range.start + 1)]), plan.trailer])
        assert.equal(plan.contentLength, body.length)
        const order = [...body.toString().matchAll(/Content-Range: bytes (\d+)-(\d+)\/51\r\n/g)].map((m) => ({ start: Number(m[1]), end: Number(m[2]) }))
        assert.deepEqual(order, ranges)
      }),
      RUNS,
    )
  })
})
