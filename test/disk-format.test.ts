/**
 * The disk tier's file format, without a filesystem: header encode/parse round trips, and
 * every way a damaged or foreign header is refused (recovery then drops the file).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import {
  BLOCK_BYTES,
  EMPTY_SHA256,
  FORMAT_VERSION,
  type Header,
  MAX_HEADER_BYTES,
  PREFIX_BYTES,
  charge,
  decodeHeader,
  encodeHeader,
  encodedLength,
  entryPath,
  hashOfEntryName,
  headerOf,
  isFanName,
  isTempName,
  metaOf,
  storedAtOf,
  tempPath,
} from '../src/cache/disk/format.ts'
import type { ObjectMeta } from '../src/stores/types.ts'

const DIGEST = createHash('sha256').update('body').digest('hex')
const META: ObjectMeta = { size: 4, contentType: 'text/plain', etag: '"e"', lastModified: new Date('2024-05-06T07:08:09.000Z') }

/** The raw bytes of a header made of arbitrary JSON, as a damaged or foreign file might hold. */
function rawHeader(json: string): Buffer {
  const body = Buffer.from(json)
  const out = Buffer.alloc(PREFIX_BYTES + body.byteLength)
  out.write('CGD1')
  out.writeUInt32BE(body.byteLength, 4)
  body.copy(out, PREFIX_BYTES)
  return out
}

describe('disk file format', () => {
  it('encodes a header that decodes to the same header and metadata, with the body offset', () => {
    const header = { ...headerOf('b\u0000ké y', META, 1_700_000_000_123), sha256: DIGEST }
    const head = encodeHeader(header)
    assert.deepEqual(head.subarray(0, 4), Buffer.from('CGD1'))
    const decoded = decodeHeader(Buffer.concat([head, Buffer.from('body')]))
    assert.ok(decoded)
    assert.equal(decoded.offset, head.byteLength)
    assert.deepEqual(decoded.header, JSON.parse(JSON.stringify(header)))
    assert.deepEqual(metaOf(decoded.header), META)
  })

  it('absent ETag and Last-Modified stay absent', () => {
    const meta: ObjectMeta = { size: 0, contentType: 'application/octet-stream' }
    const decoded = decodeHeader(encodeHeader({ ...headerOf('k', meta, 1), sha256: EMPTY_SHA256 }))
    assert.ok(decoded)
    assert.deepEqual(metaOf(decoded.header), meta)
    assert.equal('etag' in decoded.header, false)
  })

  it('records storedAt only when it differs from the write time; without it, storedAt is the write time', () => {
    const fresh = decodeHeader(encodeHeader({ ...headerOf('k', META, 5_000), sha256: DIGEST }))
    assert.ok(fresh)
    assert.equal('storedAt' in fresh.header, false) // byte-identical to what older versions wrote
    assert.equal(storedAtOf(fresh.header), 5_000)
    const copy = decodeHeader(encodeHeader({ ...headerOf('k', META, 5_000, 1_000), sha256: DIGEST }))
    assert.ok(copy)
    assert.equal(copy.header.written, 5_000)
    assert.equal(storedAtOf(copy.header), 1_000)
  })

  it('knows the encoded length before the digest is known', () => {
    const header = headerOf('b\u0000🐈'.repeat(50), META, 42)
    assert.equal(encodedLength(header), encodeHeader({ ...header, sha256: DIGEST }).byteLength)
  })

  it('refuses a wrong magic, a short prefix, a length past the bytes given or past the limit', () => {
    const head = encodeHeader({ ...headerOf('k', META, 1), sha256: DIGEST })
    assert.equal(decodeHeader(Buffer.concat([Buffer.from('CGD0'), head.subarray(4)])), undefined)
    assert.equal(decodeHeader(head.subarray(0, 7)), undefined)
    assert.equal(decodeHeader(head.subarray(0, head.byteLength - 1)), undefined)
    const huge = Buffer.from(head)
    huge.writeUInt32BE(MAX_HEADER_BYTES + 1, 4)
    assert.equal(decodeHeader(huge), undefined)
  })

  it('refuses headers whose fields are missing, mistyped or inconsistent', () => {
    const good: Header = { ...headerOf('k', META, 1), sha256: DIGEST }
    assert.ok(decodeHeader(rawHeader(JSON.stringify(good))))
    const bad: Record<string, unknown>[] = [
      { v: FORMAT_VERSION + 1 },
      { v: undefined },
      { key: '' },
      { key: 7 },
      { size: -1 },
      { size: 1.5 },
      { size: '4' },
      { contentType: undefined },
      { sha256: 'ABC' },
      { sha256: DIGEST.toUpperCase() },
      { size: 0 }, // an empty body has exactly one digest
      { written: 'yesterday' },
      { written: undefined },
      { etag: 5 },
      { storedAt: '2024-01-01' },
      { storedAt: null },
      { lastModified: 'not a date' },
    ]
    for (const change of bad) assert.equal(decodeHeader(rawHeader(JSON.stringify({ ...good, ...change }))), undefined, JSON.stringify(change))
    for (const json of ['', '{', 'null', '[]', '"CGD1"', '42']) assert.equal(decodeHeader(rawHeader(json)), undefined, json)
  })

  it('charges whole blocks, at least one', () => {
    assert.equal(charge(0), BLOCK_BYTES)
    assert.equal(charge(1), BLOCK_BYTES)
    assert.equal(charge(BLOCK_BYTES), BLOCK_BYTES)
    assert.equal(charge(BLOCK_BYTES + 1), 2 * BLOCK_BYTES)
  })

  it('names entry files by key hash under two fan-out levels, and tells them from temp files', () => {
    const file = entryPath('/root', 'b\u0000k', '0123456789ab')
    const hash = createHash('sha256').update('b\u0000k').digest('hex')
    assert.equal(file, `/root/${hash.slice(0, 2)}/${hash.slice(2, 4)}/${hash}.0123456789ab`)
    const name = file.split('/').at(-1)!
    assert.equal(hashOfEntryName(name), hash)
    assert.equal(hashOfEntryName(`${name}.tmp`), undefined)
    assert.equal(isTempName(tempPath(name)), true)
    assert.equal(isTempName(name), false)
    assert.equal(hashOfEntryName('notes.txt'), undefined)
    assert.deepEqual(['ab', '0f', 'AB', 'abc', '..'].map(isFanName), [true, true, false, false, false])
  })
})
