/** Bodies kept as chunk lists: slicing across chunk boundaries, joining small ones. */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { JOIN_UP_TO, byteLength, chunksOf, keep, sliceBytes, toBuffer } from '../src/cache/bytes.ts'
import { prng } from './helpers/prng.ts'

describe('Bytes', () => {
  it('sliceBytes of a chunk list equals the same slice of the joined body, for 2,000 random ranges', () => {
    const random = prng(7)
    const body = randomBytes(50_000)
    const chunks: Buffer[] = []
    for (let at = 0; at < body.length; ) {
      const step = Math.min(body.length - at, 1 + Math.floor(random() * 3000))
      chunks.push(body.subarray(at, at + step))
      at += step
    }
    chunks.splice(3, 0, Buffer.alloc(0)) // an empty chunk in the middle changes nothing
    assert.equal(byteLength(chunks), body.length)
    for (let i = 0; i < 2000; i++) {
      const a = Math.floor(random() * body.length)
      const b = Math.floor(random() * body.length)
      const [start, end] = a <= b ? [a, b] : [b, a]
      const sliced = sliceBytes(chunks, start, end)
      assert.deepEqual(toBuffer(sliced), body.subarray(start, end + 1), `${start}-${end}`)
      assert.equal(byteLength(sliced), end - start + 1)
      for (const chunk of chunksOf(sliced)) assert.equal(chunk.buffer, body.buffer, 'a slice shares memory, it does not copy')
    }
  })

  it('keep joins small bodies into one Buffer and keeps large ones as their chunks', () => {
    const small = [Buffer.from('ab'), Buffer.from('cd')]
    assert.deepEqual(keep(small, 4), Buffer.from('abcd'))
    const one = Buffer.from('x')
    assert.equal(keep([one], 1), one)
    const large = [Buffer.alloc(JOIN_UP_TO), Buffer.alloc(1)]
    assert.equal(keep(large, JOIN_UP_TO + 1), large)
  })
})
