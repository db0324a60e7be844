/**
 * What the fs store's list and delete do with the directory tree under them: byte order beyond
 * the BMP, empty directories, directories pruned on delete, a full 1000-key page.
 */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { createFsStore } from '../src/stores/fs.ts'
import type { Store } from '../src/stores/types.ts'

const body = (text: string) => Readable.from([Buffer.from(text)])

describe('fs store listing', () => {
  let root: string
  let store: Store
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'cachegate-fs-list-'))
    store = createFsStore({ id: 'fs-list', root })
  })
  after(() => rm(root, { recursive: true, force: true }))

  it('orders keys by UTF-8 bytes, not UTF-16 code units', async () => {
    // U+FFFD is EF BF BD in UTF-8, U+1F600 is F0 9F 98 80: JavaScript's < says the opposite.
    for (const key of ['u/\u{1F600}.txt', 'u/\uFFFD.txt', 'u/z.txt']) await store.put(key, body(key), { contentType: 'text/plain' })
    const page = await store.list!({ prefix: 'u/', maxKeys: 10 })
    assert.deepEqual(page.objects.map((o) => o.key), ['u/z.txt', 'u/\uFFFD.txt', 'u/\u{1F600}.txt'])
  })

  it('an empty directory is no common prefix; one holding a key deep down is', async () => {
    await mkdir(path.join(root, 'tree', 'empty', 'deeper'), { recursive: true })
    await store.put('tree/full/a/b/c.txt', body('c'), { contentType: 'text/plain' })
    const page = await store.list!({ prefix: 'tree/', delimiter: '/', maxKeys: 10 })
    assert.deepEqual(page.commonPrefixes, ['tree/full/'])
    assert.deepEqual(page.objects, [])
    const flat = await store.list!({ prefix: 'tree/', maxKeys: 10 })
    assert.deepEqual(flat.objects.map((o) => o.key), ['tree/full/a/b/c.txt'])
  })

  it('delete removes the directories it leaves empty, not the root nor a directory still in use', async () => {
    await store.put('gone/a/b/c.txt', body('c'), { contentType: 'text/plain' })
    await store.put('gone/kept.txt', body('k'), { contentType: 'text/plain' })
    await store.delete!('gone/a/b/c.txt')
    await assert.rejects(stat(path.join(root, 'gone', 'a')), { code: 'ENOENT' })
    assert.ok((await stat(path.join(root, 'gone'))).isDirectory())
    await store.delete!('gone/kept.txt')
    await assert.rejects(stat(path.join(root, 'gone')), { code: 'ENOENT' })
    assert.ok((await stat(root)).isDirectory())
  })

  it('pages 1001 keys as 1000 and 1, and a prefix with a dot segment lists nothing', async () => {
    await Promise.all(Array.from({ length: 1001 }, (_, i) => store.put(`many/${String(i).padStart(4, '0')}`, body(''), { contentType: 'text/plain' })))
    const first = await store.list!({ prefix: 'many/', maxKeys: 1000 })
    assert.equal(first.objects.length, 1000)
    assert.equal(first.isTruncated, true)
    const second = await store.list!({ prefix: 'many/', maxKeys: 1000, continuationToken: first.nextContinuationToken })
    assert.deepEqual(second.objects.map((o) => o.key), ['many/1000'])
    assert.equal(second.isTruncated, false)
    assert.deepEqual((await store.list!({ prefix: 'many/../many/', maxKeys: 10 })).objects, [])
  })
})
