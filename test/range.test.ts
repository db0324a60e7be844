import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  contentRange,
  multipartBoundary,
  multipartParts,
  parseRange,
  resolveRanges,
  unsatisfiedRange,
} from '../src/http/range.ts'
import { evaluateIfRange, evaluatePreconditions, parseHttpDate } from '../src/http/conditional.ts'
import type { ByteRange } from '../src/stores/types.ts'

/** `'full'` → 200, `416` → unsatisfiable, `[[a, b], ...]` → 206 with these ranges. */
type Expected = 'full' | 416 | Array<[number, number]>

const K = 10000

const cases: Array<[header: string | undefined, size: number, expected: Expected]> = [
  // Single ranges
  ['bytes=0-0', K, [[0, 0]]],
  ['bytes=0-99', K, [[0, 99]]],
  ['bytes=0-', K, [[0, 9999]]],
  ['bytes=9999-', K, [[9999, 9999]]],
  ['bytes=9990-20000', K, [[9990, 9999]]], // end beyond size: clamped
  ['bytes=-500', K, [[9500, 9999]]],
  ['bytes=-20000', K, [[0, 9999]]], // suffix larger than size: whole object as 206
  ['bytes=-0', K, 416], // zero-length suffix: unsatisfiable
  ['bytes=10000-', K, 416], // start = size
  ['bytes=10000-10005', K, 416],
  ['bytes=5-5', K, [[5, 5]]],
  ['bytes=007-009', K, [[7, 9]]], // leading zeros are digits
  // Malformed → ignore the field, 200
  ['bytes=5-2', K, 'full'],
  ['bytes=abc', K, 'full'],
  ['bytes=', K, 'full'],
  ['bytes=-', K, 'full'],
  ['bytes=1-2-3', K, 'full'],
  ['bytes=0-1,abc', K, 'full'], // one bad spec spoils the field
  ['bytes=0x10-20', K, 'full'],
  ['bytes=+1-2', K, 'full'],
  ['bytes=1.5-2', K, 'full'],
  ['bytes=0-1;x', K, 'full'],
  ['bytes 0-1', K, 'full'],
  ['', K, 'full'],
  [undefined, K, 'full'],
  ['bytes=,', K, 'full'],
  ['items=0-1', K, 'full'], // unknown unit
  ['bytesx=0-1', K, 'full'],
  // Case, whitespace and empty list elements
  ['BYTES=0-1', K, [[0, 1]]],
  ['Bytes=0-1', K, [[0, 1]]],
  ['bytes= 0-1', K, [[0, 1]]],
  ['bytes =0-1', K, [[0, 1]]],
  ['bytes=0-1 , 5-6', K, [[0, 1], [5, 6]]],
  ['bytes=0-1,\t5-6', K, [[0, 1], [5, 6]]],
  ['bytes=0 - 1', K, 'full'], // no whitespace inside a spec
  ['bytes=0-1,', K, [[0, 1]]], // trailing comma: empty element ignored (RFC 9110 §5.6.1)
  ['bytes=,0-1', K, [[0, 1]]],
  ['bytes=0-1,,,5-6', K, [[0, 1], [5, 6]]],
  // Beyond Number.MAX_SAFE_INTEGER
  ['bytes=0-99999999999999999999', K, [[0, 9999]]],
  ['bytes=99999999999999999999-', K, 416],
  ['bytes=99999999999999999999-99999999999999999999', K, 416],
  ['bytes=99999999999999999999-99999999999999999998', K, 'full'], // last < first, compared exactly
  ['bytes=9007199254740993-9007199254740992', K, 'full'], // equal as doubles, not as decimals
  ['bytes=-99999999999999999999', K, [[0, 9999]]],
  [`bytes=0-${'9'.repeat(400)}`, K, [[0, 9999]]], // Number() gives Infinity: still clamped
  // Multiple ranges
  ['bytes=500-599,0-99', K, [[500, 599], [0, 99]]], // request order (RFC 9110 §15.3.7.2)
  ['bytes=-100,0-99', K, [[9900, 9999], [0, 99]]],
  ['bytes=20-29,0-9,10-19', K, 'full'], // adjacent once sorted, though not in request order
  ['bytes=50-59,0-9,9990-,100-109', K, [[50, 59], [0, 9], [9990, 9999], [100, 109]]],
  ['bytes=0-99,-100', K, [[0, 99], [9900, 9999]]],
  ['bytes=0-10,5-20', K, 'full'], // overlapping
  ['bytes=0-10,11-20', K, 'full'], // adjacent
  ['bytes=0-10,12-20', K, [[0, 10], [12, 20]]], // one-byte gap
  ['bytes=0-10,0-10', K, 'full'], // duplicate
  ['bytes=-100,9950-', K, 'full'], // suffix overlapping an open range
  ['bytes=9950-,0-9,-100', K, 'full'], // overlap between the first and last in request order
  ['bytes=0-1,20000-30000', K, [[0, 1]]], // unsatisfiable spec dropped
  ['bytes=20000-,30000-', K, 416], // all unsatisfiable
  ['bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14', K, [[0, 0], [2, 2], [4, 4], [6, 6], [8, 8], [10, 10], [12, 12], [14, 14]]],
  ['bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16', K, 'full'], // 9 > maxRanges
  ['bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,20000-', K, [[0, 0], [2, 2], [4, 4], [6, 6], [8, 8], [10, 10], [12, 12], [14, 14]]],
  // Size 0: no byte exists. A non-zero suffix is still satisfiable (RFC 9110 §14.1.2), so
  // no 416; no 206 can carry zero bytes, so the field is ignored: 200 with the empty body.
  ['bytes=0-0', 0, 416],
  ['bytes=0-', 0, 416],
  ['bytes=-1', 0, 'full'],
  ['bytes=-100', 0, 'full'],
  ['bytes=-99999999999999999999', 0, 'full'],
  ['bytes=0-0,-1', 0, 'full'], // one satisfiable range among them: no 416 (§15.5.17)
  ['bytes=-0', 0, 416],
  ['bytes=-0,0-', 0, 416],
  ['bytes=5-2', 0, 'full'], // malformed is still ignored
  [undefined, 0, 'full'],
  // Size 1
  ['bytes=0-0', 1, [[0, 0]]],
  ['bytes=0-', 1, [[0, 0]]],
  ['bytes=-1', 1, [[0, 0]]],
  ['bytes=-5', 1, [[0, 0]]],
  ['bytes=0-5', 1, [[0, 0]]],
  ['bytes=1-', 1, 416],
  ['bytes=-0', 1, 416],
  ['bytes=0-0,-1', 1, 'full'], // the same byte twice
]

function summarize(header: string | undefined, size: number): Expected {
  const resolved = resolveRanges(parseRange(header), size)
  if (resolved.type === 'full') return 'full'
  if (resolved.type === 'unsatisfiable') return 416
  return resolved.ranges.map((r): [number, number] => [r.start, r.end])
}

describe('parseRange + resolveRanges', () => {
  for (const [header, size, expected] of cases) {
    test(`${JSON.stringify(header)} on ${size} bytes → ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(summarize(header, size), expected)
    })
  }
})

describe('parseRange', () => {
  test('returns the three spec kinds in request order', () => {
    assert.deepEqual(parseRange('bytes=5-9, 100-, -3'), {
      type: 'ranges',
      specs: [
        { kind: 'bounded', start: 5, end: 9 },
        { kind: 'open-ended', start: 100 },
        { kind: 'suffix', length: 3 },
      ],
    })
  })
})

describe('resolveRanges options', () => {
  test('maxRanges is configurable', () => {
    assert.deepEqual(resolveRanges(parseRange('bytes=0-0,2-2'), K, { maxRanges: 1 }), { type: 'full' })
    assert.equal(resolveRanges(parseRange('bytes=0-0'), K, { maxRanges: 1 }).type, 'partial')
  })

  test('rejects a nonsensical maxRanges or size', () => {
    assert.throws(() => resolveRanges({ type: 'none' }, K, { maxRanges: 0 }), TypeError)
    assert.throws(() => resolveRanges({ type: 'none' }, -1), TypeError)
    assert.throws(() => resolveRanges({ type: 'none' }, 1.5), TypeError)
  })
})

describe('Content-Range values', () => {
  test('contentRange and unsatisfiedRange', () => {
    assert.equal(contentRange({ start: 0, end: 0 }, 1), 'bytes 0-0/1')
    assert.equal(contentRange({ start: 9500, end: 9999 }, K), 'bytes 9500-9999/10000')
    assert.equal(unsatisfiedRange(K), 'bytes */10000')
    assert.equal(unsatisfiedRange(0), 'bytes */0')
  })
})

describe('multipart/byteranges', () => {
  const object = Buffer.from(Array.from({ length: K }, (_, i) => i % 251))

  /** Assembles the body the way a route would stream it. */
  function assemble(ranges: ByteRange[], contentType: string, boundary: string) {
    const plan = multipartParts(ranges, object.length, contentType, boundary)
    const chunks: Uint8Array[] = []
    for (const part of plan.parts) chunks.push(part.header, object.subarray(part.range.start, part.range.end + 1))
    chunks.push(plan.trailer)
    return { plan, body: Buffer.concat(chunks) }
  }

  test('the body has the layout of RFC 9110 §14.6', () => {
    const bytes = Buffer.from('0123456789')
    const plan = multipartParts([{ start: 0, end: 1 }, { start: 8, end: 9 }], 10, 'text/plain', 'XYZ')
    const body = Buffer.concat([plan.parts[0]!.header, bytes.subarray(0, 2), plan.parts[1]!.header, bytes.subarray(8), plan.trailer])
    assert.equal(
      body.toString(),
      '--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01' +
        '\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89' +
        '\r\n--XYZ--\r\n',
    )
    assert.equal(plan.contentType, 'multipart/byteranges; boundary=XYZ')
    assert.equal(plan.contentLength, body.length)
  })

  const layouts: Array<[name: string, ranges: ByteRange[], contentType: string]> = [
    ['two ranges', [{ start: 0, end: 99 }, { start: 9000, end: 9999 }], 'application/octet-stream'],
    ['single bytes', [{ start: 0, end: 0 }, { start: 2, end: 2 }, { start: 9999, end: 9999 }], 'image/png'],
    ['eight ranges', Array.from({ length: 8 }, (_, i) => ({ start: i * 1000, end: i * 1000 + 499 })), 'video/mp4'],
    ['non-ASCII type', [{ start: 10, end: 19 }, { start: 30, end: 39 }], 'text/plain; name="é"'],
    ['a single part', [{ start: 0, end: 9999 }], 'text/plain'],
  ]
  for (const [name, ranges, contentType] of layouts) {
    test(`contentLength equals the assembled length: ${name}`, () => {
      const { plan, body } = assemble(ranges, contentType, multipartBoundary())
      assert.equal(plan.contentLength, body.length)
      // Each part's bytes sit right after its header.
      let offset = 0
      for (const part of plan.parts) {
        offset += part.header.byteLength
        const length = part.range.end - part.range.start + 1
        assert.deepEqual(body.subarray(offset, offset + length), object.subarray(part.range.start, part.range.end + 1))
        offset += length
      }
    })
  }

  test('boundaries are random tokens', () => {
    const a = multipartBoundary()
    assert.match(a, /^[0-9a-f]{32}$/)
    assert.notEqual(a, multipartBoundary())
  })

  test('refuses header injection and bad boundaries', () => {
    const ranges = [{ start: 0, end: 0 }]
    assert.throws(() => multipartParts(ranges, 1, 'text/plain\r\nX-Evil: 1', 'b'), TypeError)
    assert.throws(() => multipartParts(ranges, 1, 'text/plain', ''), TypeError)
    assert.throws(() => multipartParts(ranges, 1, 'text/plain', 'a b'), TypeError)
    assert.throws(() => multipartParts(ranges, 1, 'text/plain', 'x'.repeat(71)), TypeError)
  })
})

describe('header values are trimmed in linear time', () => {
  // `/^[ \t]+|[ \t]+$/g` tried the second branch at every blank of a run: a 16 KiB Range or
  // If-None-Match (Node's header limit) held the event loop ~0.4 s, for anyone holding a link.
  test('a long run of blanks inside a Range, If-Match, If-None-Match, If-Range or date value', () => {
    const blanks = ' \t'.repeat(32 * 1024)
    const current = { etag: '"v1"', lastModified: new Date(0) }
    const cases: [string, () => unknown][] = [
      ['Range', () => parseRange(`bytes=0-1,${blanks}x`)],
      ['Range unit', () => parseRange(`by${blanks}tes=0-1`)],
      ['If-None-Match', () => evaluatePreconditions('GET', { ifNoneMatch: `"a"${blanks}x` }, current)],
      ['If-Match', () => evaluatePreconditions('GET', { ifMatch: `"a"${blanks}x` }, current)],
      ['If-Range', () => evaluateIfRange(`"a"${blanks}x`, current)],
      ['date', () => parseHttpDate(`x${blanks}x`)],
    ]
    for (const [name, parse] of cases) {
      const started = performance.now()
      parse()
      const ms = performance.now() - started
      assert.ok(ms < 200, `${name}: ${Math.round(ms)} ms`)
    }
  })
})
