/**
 * The S3 front end's pure parts: the aws-chunked decoder fed in arbitrary pieces, its bounds,
 * the XML reader and writer, CRC-32C, the query parser, the keyed HMAC-SHA256.
 */
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { HmacSha256, equalHex } from '../src/s3/auth/hmac.ts'
import { needsFolding } from '../src/s3/auth/sigv4.ts'
import { BodyTally } from '../src/s3/body-check.ts'
import { createChecksum, crc32c } from '../src/s3/checksums.ts'
import { ChunkedDecoder, MAX_CHUNK, MAX_LINE } from '../src/s3/chunked.ts'
import { S3Error } from '../src/s3/errors.ts'
import { parseQuery } from '../src/s3/query.ts'
import { requestIds } from '../src/s3/request-id.ts'
import { escapeXml, parseCompleteMultipart, parseDelete, xmlDocument } from '../src/s3/xml.ts'

function encodeUnsigned(chunks: Buffer[], trailer?: string): Buffer {
  const parts: Buffer[] = []
  for (const data of chunks) parts.push(Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n'))
  parts.push(Buffer.from(`0\r\n${trailer ? `${trailer}\r\n` : ''}\r\n`))
  return Buffer.concat(parts)
}

/** Feeds `encoded` to a decoder in pieces cut at `cuts`; resolves with the output or rejects with the decoder's error. */
async function decode(encoded: Buffer, cuts: number[], options: { size?: number; limit?: number; checksum?: boolean; trailer?: boolean } = {}): Promise<Buffer> {
  const points = [...new Set(cuts.map((c) => c % (encoded.length + 1)))].sort((a, b) => a - b)
  const pieces: Buffer[] = []
  let from = 0
  for (const point of [...points, encoded.length]) {
    if (point > from) pieces.push(encoded.subarray(from, point))
    from = Math.max(from, point)
  }
  const tally = new BodyTally({ size: options.size, limit: options.limit ?? 2 ** 30, checksum: options.checksum ? { algorithm: 'crc32' } : undefined })
  const decoder = new ChunkedDecoder({ trailer: options.trailer ?? Boolean(options.checksum), checksumTrailer: options.checksum ? 'x-amz-checksum-crc32' : undefined, tally })
  const out: Buffer[] = []
  for await (const chunk of Readable.from(pieces).pipe(decoder)) out.push(chunk as Buffer)
  return Buffer.concat(out)
}

const crc32Of = (data: Buffer) => {
  const c = createChecksum('crc32')
  c.update(data)
  return c.digest()
}

describe('aws-chunked decoder', () => {
  it('decodes the same bytes however the input is cut, trailer checksum included', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), async (arrays, cuts) => {
        const chunks = arrays.map((a) => Buffer.from(a))
        const whole = Buffer.concat(chunks)
        const encoded = encodeUnsigned(chunks, `x-amz-checksum-crc32:${crc32Of(whole)}`)
        assert.deepEqual(await decode(encoded, cuts, { size: whole.length, checksum: true }), whole)
      }),
      { numRuns: 150 },
    )
  })

  const refused = async (promise: Promise<unknown>, code: string) => {
    await assert.rejects(promise, (error: unknown) => error instanceof S3Error && error.code === code)
  }

  it('refuses a wrong checksum, a short body, a long line, an oversized chunk, bad framing, a limit overrun', async () => {
    const data = Buffer.from('hello world')
    await refused(decode(encodeUnsigned([data], 'x-amz-checksum-crc32:AAAAAA=='), [], { checksum: true }), 'BadDigest')
    await refused(decode(encodeUnsigned([data]).subarray(0, 10), []), 'IncompleteBody')
    await refused(decode(encodeUnsigned([data]), [], { size: 99 }), 'IncompleteBody')
    await refused(decode(Buffer.from(`${'0'.repeat(MAX_LINE + 1)}\r\n`), [7]), 'InvalidArgument')
    await refused(decode(Buffer.from(`${(MAX_CHUNK + 1).toString(16)}\r\n`), []), 'InvalidArgument')
    await refused(decode(Buffer.from('5\r\nhello!!\r\n0\r\n\r\n'), []), 'InvalidArgument')
    await refused(decode(Buffer.from('5\nhello\r\n0\r\n\r\n'), []), 'InvalidArgument')
    await refused(decode(Buffer.from('zz\r\n'), []), 'InvalidArgument')
    await refused(decode(encodeUnsigned([data, data]), [], { limit: 15 }), 'EntityTooLarge')
    // Trailers that were not announced.
    await refused(decode(encodeUnsigned([data], 'x-amz-checksum-crc32:AAAAAA=='), [], { trailer: false }), 'InvalidArgument')
  })
})

describe('S3 XML', () => {
  it('escapes text and reads back what it would write', () => {
    assert.equal(escapeXml(`a<b>&"c'\r`), 'a&lt;b&gt;&amp;&quot;c&apos;&#13;')
    assert.match(xmlDocument('R', [['Key', '<&>'], ['Skip', undefined], ['N', 3]]), /<R xmlns="[^"]+"><Key>&lt;&amp;&gt;<\/Key><N>3<\/N><\/R>$/)
    const keys = ['a&b', '<tag>', 'plain/key.txt', 'ü €']
    const xml = `<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>${keys.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join('')}</Delete>`
    assert.deepEqual(parseDelete(xml, 1000), { quiet: true, keys })
    assert.deepEqual(parseDelete('<Delete><Object><Key>&#x41;&#66;</Key></Object></Delete>', 1000), { quiet: false, keys: ['AB'] })
    assert.deepEqual(parseCompleteMultipart('<CompleteMultipartUpload><Part><ETag>"e1"</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part></CompleteMultipartUpload>', 10_000), [
      { partNumber: 1, etag: '"e1"' },
      { partNumber: 2, etag: '"e2"' },
    ])
  })

  it('refuses DTDs, stray markup, missing fields and too many entries as MalformedXML', () => {
    const malformed = (fn: () => unknown) => assert.throws(fn, (e: unknown) => e instanceof S3Error && e.code === 'MalformedXML')
    malformed(() => parseDelete('<!DOCTYPE x [<!ENTITY a "b">]><Delete><Object><Key>&a;</Key></Object></Delete>', 1000))
    malformed(() => parseDelete('<Delete><Object><Key>a & b</Key></Object></Delete>', 1000))
    malformed(() => parseDelete('<Delete></Delete>', 1000))
    malformed(() => parseDelete('<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object></Delete>', 1))
    malformed(() => parseDelete('<Other/>', 1000))
    malformed(() => parseCompleteMultipart('<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>', 10_000))
  })

  it('reads attributes, comments and look-alike names as before', () => {
    const xml = '<Delete><!-- a <Object> in a comment --><Objects><Key>no</Key></Objects><Object id="1"><Key>a</Key></Object><Object\n><Key>b</Key><!-- c --></Object><Quiet>true</Quiet></Delete>'
    assert.deepEqual(parseDelete(xml, 1000), { quiet: true, keys: ['a', 'b'] })
    assert.deepEqual(parseDelete('<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Delete>', 1000), { quiet: false, keys: ['a'] })
  })

  it('takes time linear in the body: opening tags, attributes or comments that never close do not make a scan per tag', () => {
    // Each of these once took seconds per 512 KiB (8 MiB, the DeleteObjects limit, blocked the event loop for most of an hour).
    const size = 512 * 1024
    const bodies: [string, (xml: string) => unknown][] = [
      [`<Delete>${'<Object>'.repeat(size / 8)}</Delete>`, (xml) => parseDelete(xml, 1000)],
      [`<Delete>${'<Object '.repeat(size / 8)}</Delete>`, (xml) => parseDelete(xml, 1000)],
      [`<Delete><Object><Key>a</Key></Object>${'<!--'.repeat(size / 4)}</Delete>`, (xml) => parseDelete(xml, 1000)],
      [`<Delete><Object><Key>a</Key></Object>${'<Quiet>'.repeat(size / 7)}</Delete>`, (xml) => parseDelete(xml, 1000)],
      [`<CompleteMultipartUpload>${'<Part>'.repeat(size / 6)}</CompleteMultipartUpload>`, (xml) => parseCompleteMultipart(xml, 10_000)],
    ]
    for (const [xml, parse] of bodies) {
      const started = performance.now()
      try {
        parse(xml)
      } catch (error) {
        assert.ok(error instanceof S3Error && error.code === 'MalformedXML', String(error))
      }
      const ms = performance.now() - started
      assert.ok(ms < 1000, `${xml.slice(0, 40)}…: ${Math.round(ms)} ms`)
    }
  })
})

describe('checksums and query', () => {
  it('CRC-32C matches the RFC 3720 test vectors', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283)
    assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa)
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43)
  })

  it('the query keeps "+" and repeats, and refuses prototype names', () => {
    assert.deepEqual(parseQuery('prefix=a+b%20c&x=1&x=2&flag'), { prefix: 'a+b c', x: ['1', '2'], flag: '' })
    assert.throws(() => parseQuery('__proto__=1'), S3Error)
    assert.throws(() => parseQuery('a=%zz'), S3Error)
  })
})

describe('S3 request ids', () => {
  it('are upper-case hex and a count, unique within a process and between generators made in the same millisecond', () => {
    const first = requestIds()
    const second = requestIds()
    const ids = new Set<string>()
    for (let i = 0; i < 1000; i++) for (const next of [first, second]) ids.add(next())
    assert.equal(ids.size, 2000)
    for (const id of ids) assert.match(id, /^[0-9A-F]{20}\d+$/)
  })
})

describe('SigV4 header-value folding', () => {
  it('needsFolding says what the regex it replaced said: line breaks, tabs, runs of spaces, a leading or trailing space', () => {
    const UNFOLDED = /[\r\n\t]|  |^ | $/
    const CHARS = [' ', '\t', '\r', '\n', 'a', '\u2028', '\u00a0', '\v']
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...CHARS), { maxLength: 8 }).map((chars) => chars.join('')), (value) => {
        assert.equal(needsFolding(value), UNFOLDED.test(value), JSON.stringify(value))
      }),
      { numRuns: 2000 },
    )
    for (const value of [' a', 'a ', 'a  b', 'a\tb', 'a b', '', 'ab']) assert.equal(needsFolding(value), UNFOLDED.test(value), JSON.stringify(value))
  })
})

describe('HMAC-SHA256 with prepared key pads', () => {
  const reference = (key: Uint8Array, text: string) => createHmac('sha256', key).update(text).digest('hex')

  it('matches RFC 4231 test case 2 and createHmac on random keys (short, a block, longer) and UTF-8 messages, short and long', () => {
    const key = Buffer.from('Jefe')
    assert.equal(new HmacSha256(key).hex('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843')
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.string({ unit: 'binary', maxLength: 600 }), { minLength: 1, maxLength: 4 }), (bytes, texts) => {
        const key = Buffer.from(bytes)
        const hmac = new HmacSha256(key)
        // The same instance again and again, the same length twice: its buffers are reused between messages.
        for (const text of [...texts, ...texts]) assert.equal(hmac.hex(text), reference(key, text))
      }),
      { numRuns: 300 },
    )
  })

  it('a message too long for the prepared buffer and one that fits, of the same byte length, in turn', () => {
    const key = Buffer.alloc(32, 9)
    const hmac = new HmacSha256(key)
    // 'é' is 2 bytes, '€' 3: both 684 bytes, the first over the buffer's room (3 × 342 > 1024), the second not.
    const long = 'é'.repeat(342)
    const short = '€'.repeat(228)
    for (const text of [short, long, short, long, long, short]) assert.equal(hmac.hex(text), reference(key, text))
  })

  it('equalHex: equal digests only, whatever differs and wherever', () => {
    const digest = createHmac('sha256', 'k').update('m').digest('hex')
    assert.equal(equalHex(digest, `${digest}`), true)
    for (let at = 0; at < 64; at++) {
      const changed = `${digest.slice(0, at)}${digest[at] === '0' ? '1' : '0'}${digest.slice(at + 1)}`
      assert.equal(equalHex(digest, changed), false, `a difference at ${at}`)
    }
    assert.equal(equalHex(digest, digest.slice(0, 63)), false)
    assert.equal(equalHex(digest, `${digest}0`), false)
    assert.equal(equalHex(digest, digest.toUpperCase()), false)
    assert.equal(equalHex('', ''), true)
  })

  it('keeps two keys apart when their messages interleave', () => {
    const a = new HmacSha256(Buffer.alloc(32, 1))
    const b = new HmacSha256(Buffer.alloc(32, 2))
    for (const text of ['x', 'y'.repeat(400), 'z']) {
      const fromA = a.hex(text)
      const fromB = b.hex(text)
      assert.equal(fromA, reference(Buffer.alloc(32, 1), text))
      assert.equal(fromB, reference(Buffer.alloc(32, 2), text))
    }
  })
})
