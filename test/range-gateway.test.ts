/**
 * Range answers through the whole gateway over an fs store, on every read path a multipart
 * response can take: a cold fill, a memory hit, cold and cached pages, uncached ranged reads.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BEARER, type TestGateway, startGateway, tempDir } from './helpers/gateway.ts'
import { multipartParts } from './helpers/multipart.ts'

const auth = { Authorization: `Bearer ${BEARER}` }
const MiB = 1024 * 1024

const parts = multipartParts

for (const pageSize of ['1MiB', '0']) {
  describe(`ranges through the gateway (fs store, page_size ${pageSize})`, () => {
    let gw: TestGateway
    const small = randomBytes(200 * 1024)
    const large = randomBytes(3 * MiB + 17)

    before(async () => {
      const root = await tempDir()
      await mkdir(path.join(root, 'r'))
      await writeFile(path.join(root, 'r/empty.bin'), '')
      await writeFile(path.join(root, 'r/small.bin'), small)
      await writeFile(path.join(root, 'r/large.bin'), large)
      gw = await startGateway({ root, raw: { cache: { max_memory: '16MiB', max_object_size: '1MiB', page_size: pageSize } } })
    })
    after(() => gw?.close())

    const get = async (key: string, range: string) => {
      const res = await fetch(`${gw.url}/local/${key}`, { headers: { ...auth, Range: range } })
      return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) }
    }

    it('RFC 9110 §14.1.2: a suffix range of an empty object is 200 with the empty body, cold and cached; any other range is 416', async () => {
      for (const round of ['cold', 'cached']) {
        const res = await get('r/empty.bin', 'bytes=-100')
        assert.equal(res.status, 200, round)
        assert.equal(res.headers.get('content-length'), '0', round)
        assert.equal(res.headers.get('content-range'), null, round)
        assert.equal(res.body.length, 0, round)
      }
      const unsatisfiable = await get('r/empty.bin', 'bytes=0-')
      assert.equal(unsatisfiable.status, 416)
      assert.equal(unsatisfiable.headers.get('content-range'), 'bytes */0')
    })

    it('RFC 9110 §15.3.7.2: multipart parts follow the request order, cold and cached, small and large objects', async () => {
      const cases: Array<[key: string, bytes: Buffer, ranges: Array<[number, number]>]> = [
        ['r/small.bin', small, [[150_000, 150_009], [0, 9], [small.length - 5, small.length - 1], [100, 199]]],
        // Parts on different pages, the later ones first; one crosses a page boundary.
        ['r/large.bin', large, [[large.length - 3, large.length - 1], [2 * MiB - 5, 2 * MiB + 4], [7, 7], [MiB + 1, MiB + 99]]],
      ]
      for (const [key, bytes, ranges] of cases) {
        for (const round of ['cold', 'cached']) {
          const res = await get(key, `bytes=${ranges.map(([a, b]) => `${a}-${b}`).join(', ')}`)
          assert.equal(res.status, 206, `${key} ${round}`)
          assert.equal(Number(res.headers.get('content-length')), res.body.length)
          const sent = parts(res.body, res.headers.get('content-type')!)
          assert.deepEqual(
            sent.map((part) => part.range),
            ranges.map(([a, b]) => `${a}-${b}/${bytes.length}`),
            `${key} ${round}`,
          )
          sent.forEach((part, i) => assert.ok(part.bytes.equals(bytes.subarray(ranges[i]![0], ranges[i]![1] + 1)), `${key} ${round} part ${i}`))
        }
      }
    })
  })
}
