/**
 * The StoreAdmin cases of the store conformance suite (list, delete, copy, multipart), run by
 * `store-conformance.test.ts` against every store it covers, bare and decorated.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { it } from 'node:test'
import { BadRequestError, InvalidKeyError, InvalidPartError, NoSuchUploadError } from '../src/errors.ts'
import type { ListOptions, ListResult, MultipartPart, Store } from '../src/stores/types.ts'

const MiB = 1024 * 1024

/**
 * What sets a store apart: a key it keeps for itself, and what an emulator does not do that the
 * real service does (each case it cannot check is skipped with the reason).
 */
export interface AdminTraits {
  /** A key the store refuses (its own state lives there), with InvalidKeyError. */
  reservedKey?: string
  /** Azurite lists from the start on a marker it cannot read (Azure answers 400). */
  acceptsAnyToken?: string
  /** s3rver has no ListParts (GET ?uploadId answers 405). */
  noListParts?: string
  /** s3rver has no AbortMultipartUpload, keeps no record of upload ids and checks no part ETag. */
  noUploadChecks?: string
  /** s3rver lists in its directory walk's order, loses nested common prefixes and cannot truncate a page. */
  listing?: string
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(Buffer.from(chunk as Buffer))
  return Buffer.concat(chunks)
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** Every page of a listing, following continuation tokens; each page within maxKeys. */
async function listAll(store: Store, options: Omit<ListOptions, 'continuationToken'>): Promise<{ keys: string[]; prefixes: string[]; pages: ListResult[] }> {
  const pages: ListResult[] = []
  let continuationToken: string | undefined
  for (let guard = 0; guard < 100; guard++) {
    const page = await store.list!({ ...options, continuationToken })
    assert.ok(page.objects.length + page.commonPrefixes.length <= options.maxKeys, 'a page holds at most maxKeys entries')
    pages.push(page)
    if (!page.isTruncated) break
    assert.ok(page.nextContinuationToken, 'a truncated page has a continuation token')
    continuationToken = page.nextContinuationToken
  }
  assert.equal(pages.at(-1)?.isTruncated, false, 'the listing ends')
  return { keys: pages.flatMap((p) => p.objects.map((o) => o.key)), prefixes: pages.flatMap((p) => p.commonPrefixes), pages }
}

const body = (data: Buffer) => Readable.from([data])

export function describeStoreAdmin(getStore: () => Store, gaps: AdminTraits = {}): void {
  const listed = ['list/a.txt', 'list/b-x.txt', 'list/b/1.txt', 'list/b/2.txt', 'list/c.txt', 'list/d/e/f.txt']

  it('list: keys under a prefix, in order, with size and ETag', { skip: gaps.listing }, async () => {
    const store = getStore()
    // Put out of order: the listing sorts ('-' sorts before '/').
    for (const key of [...listed].reverse()) await store.put(key, body(Buffer.from(key)), { contentType: 'text/plain' })
    const page = await store.list!({ prefix: 'list/', maxKeys: 1000 })
    assert.deepEqual(page.objects.map((o) => o.key), listed)
    assert.deepEqual(page.commonPrefixes, [])
    assert.equal(page.isTruncated, false)
    const first = page.objects[0]
    assert.ok(first)
    assert.equal(first.size, Buffer.byteLength('list/a.txt'))
    assert.equal(first.etag, (await store.head('list/a.txt'))?.etag)
    assert.ok(first.lastModified instanceof Date)
    const partial = await store.list!({ prefix: 'list/b', maxKeys: 1000 })
    assert.deepEqual(partial.objects.map((o) => o.key), ['list/b-x.txt', 'list/b/1.txt', 'list/b/2.txt'])
  })

  it('list: a delimiter groups keys into common prefixes', { skip: gaps.listing }, async () => {
    const store = getStore()
    const page = await store.list!({ prefix: 'list/', delimiter: '/', maxKeys: 1000 })
    assert.deepEqual(page.objects.map((o) => o.key), ['list/a.txt', 'list/b-x.txt', 'list/c.txt'])
    assert.deepEqual(page.commonPrefixes, ['list/b/', 'list/d/'])
    const partial = await store.list!({ prefix: 'list/b', delimiter: '/', maxKeys: 1000 })
    assert.deepEqual(partial.objects.map((o) => o.key), ['list/b-x.txt'])
    assert.deepEqual(partial.commonPrefixes, ['list/b/'])
  })

  it('list: pages follow continuation tokens to the same listing', { skip: gaps.listing }, async () => {
    const store = getStore()
    const flat = await listAll(store, { prefix: 'list/', maxKeys: 2 })
    assert.deepEqual(flat.keys, listed)
    assert.ok(flat.pages.length >= 3, `6 keys at 2 a page take at least 3 pages, took ${flat.pages.length}`)
    const grouped = await listAll(store, { prefix: 'list/', delimiter: '/', maxKeys: 1 })
    assert.deepEqual(grouped.keys, ['list/a.txt', 'list/b-x.txt', 'list/c.txt'])
    assert.deepEqual(grouped.prefixes, ['list/b/', 'list/d/'])
  })

  it('list: startAfter skips keys up to and including it', { skip: gaps.listing }, async () => {
    const store = getStore()
    const page = await store.list!({ prefix: 'list/', startAfter: 'list/b/1.txt', maxKeys: 1000 })
    assert.deepEqual(page.objects.map((o) => o.key), ['list/b/2.txt', 'list/c.txt', 'list/d/e/f.txt'])
    const all = await listAll(store, { prefix: 'list/', startAfter: 'list/a.txt', maxKeys: 2 })
    assert.deepEqual(all.keys, listed.slice(1))
  })

  it('list (as far as the emulator lists right): every key under a prefix, with size and ETag', { skip: !gaps.listing }, async () => {
    const store = getStore()
    for (const key of [...listed].reverse()) await store.put(key, body(Buffer.from(key)), { contentType: 'text/plain' })
    const page = await store.list!({ prefix: 'list/', maxKeys: 1000 })
    assert.deepEqual(page.objects.map((o) => o.key).sort(), [...listed].sort())
    const entry = page.objects.find((o) => o.key === 'list/a.txt')
    assert.equal(entry?.size, Buffer.byteLength('list/a.txt'))
    assert.equal(entry?.etag, (await store.head('list/a.txt'))?.etag)
    const grouped = await store.list!({ prefix: 'list/', delimiter: '/', maxKeys: 1000 })
    assert.deepEqual(grouped.objects.map((o) => o.key).sort(), ['list/a.txt', 'list/b-x.txt', 'list/c.txt'])
    assert.ok(grouped.commonPrefixes.includes('list/b/'))
    const after = await store.list!({ prefix: 'list/', startAfter: 'list/c.txt', maxKeys: 1000 })
    assert.deepEqual(after.objects.map((o) => o.key), ['list/d/e/f.txt'])
  })

  it('list: an empty prefix answers an empty page; maxKeys outside 1–1000 is refused', async () => {
    const store = getStore()
    assert.deepEqual(await store.list!({ prefix: 'no-such-prefix/', maxKeys: 10 }), { objects: [], commonPrefixes: [], isTruncated: false })
    await assert.rejects(store.list!({ prefix: 'list/', maxKeys: 0 }), BadRequestError)
    await assert.rejects(store.list!({ prefix: 'list/', maxKeys: 1001 }), BadRequestError)
  })

  it('list: a continuation token the store did not make is refused', { skip: gaps.acceptsAnyToken ?? gaps.listing }, async () => {
    const store = getStore()
    await assert.rejects(store.list!({ prefix: 'list/', continuationToken: 'not a token!', maxKeys: 10 }), BadRequestError)
  })

  it("list: the store's own state (multipart uploads) is never listed, nor nameable", async () => {
    const store = getStore()
    const uploadId = await store.createMultipart!('hidden/upload.bin', { contentType: 'application/octet-stream' })
    await store.uploadPart!('hidden/upload.bin', uploadId, 1, body(Buffer.from('part')), { size: 4 })
    const everything = await store.list!({ maxKeys: 1000 })
    assert.deepEqual(everything.objects.filter((o) => o.key.startsWith('.') || o.key.startsWith('hidden/')), [])
    const top = await store.list!({ delimiter: '/', maxKeys: 1000 })
    assert.deepEqual(top.commonPrefixes.filter((p) => p.startsWith('.')), [])
    assert.ok(top.commonPrefixes.includes('list/'))
    if (gaps.reservedKey !== undefined) {
      const reserved = gaps.reservedKey
      await assert.rejects(store.head(reserved), InvalidKeyError)
      await assert.rejects(store.put(reserved, body(Buffer.from('x')), { contentType: 'text/plain' }), InvalidKeyError)
      await assert.rejects(store.delete!(reserved), InvalidKeyError)
      await assert.rejects(store.copy!('list/a.txt', reserved), InvalidKeyError)
      await assert.rejects(store.createMultipart!(reserved, { contentType: 'text/plain' }), InvalidKeyError)
      assert.deepEqual((await store.list!({ prefix: reserved.slice(0, reserved.indexOf('/') + 1), maxKeys: 1000 })).objects, [])
    }
    if (!gaps.noUploadChecks) await store.abortMultipart!('hidden/upload.bin', uploadId)
  })

  it('delete: removes an object; a missing key is not an error', async () => {
    const store = getStore()
    await store.put('delete/me.txt', body(Buffer.from('bye')), { contentType: 'text/plain' })
    await store.delete!('delete/me.txt')
    assert.equal(await store.head('delete/me.txt'), null)
    assert.equal(await store.get('delete/me.txt'), null)
    await store.delete!('delete/me.txt')
    await store.delete!('delete/never-was.txt')
    assert.deepEqual((await store.list!({ prefix: 'delete/', maxKeys: 10 })).objects, [])
  })

  it('copy: duplicates an object with its content type, or another one; a missing source is null', async () => {
    const store = getStore()
    const data = randomBytes(70_000)
    await store.put('copy/source.bin', body(data), { contentType: 'application/x-source' })
    const copied = await store.copy!('copy/source.bin', 'copy/kept.bin')
    assert.ok(copied)
    assert.equal(copied.size, data.length)
    assert.equal(copied.contentType, 'application/x-source')
    const got = await store.get('copy/kept.bin')
    assert.ok(got)
    assert.equal(got.meta.contentType, 'application/x-source')
    assert.deepEqual(await readAll(got.body), data)
    const retyped = await store.copy!('copy/source.bin', 'copy/retyped.bin', { contentType: 'text/plain' })
    assert.equal(retyped?.contentType, 'text/plain')
    assert.equal((await store.head('copy/retyped.bin'))?.contentType, 'text/plain')
    assert.equal((await store.head('copy/source.bin'))?.contentType, 'application/x-source')
    assert.equal(await store.copy!('copy/no-such-source.bin', 'copy/nothing.bin'), null)
    assert.equal(await store.head('copy/nothing.bin'), null)
  })

  /** Three parts as S3 needs them (all but the last ≥ 5 MiB), uploaded out of order. */
  async function uploadThree(store: Store, key: string, uploadId: string): Promise<{ parts: MultipartPart[]; whole: Buffer }> {
    const data = [randomBytes(5 * MiB + 1), randomBytes(5 * MiB), randomBytes(1000)]
    const parts: MultipartPart[] = []
    for (const index of [2, 0, 1]) {
      const bytes = data[index] as Buffer
      const part = await store.uploadPart!(key, uploadId, index + 1, body(bytes), { size: bytes.length })
      assert.equal(part.partNumber, index + 1)
      assert.match(part.etag, /^"[^"]+"$/)
      parts[index] = part
    }
    return { parts, whole: Buffer.concat(data) }
  }

  it('multipart: three parts, listed, completed into their concatenation', async () => {
    const store = getStore()
    const key = 'multipart/whole.bin'
    const uploadId = await store.createMultipart!(key, { contentType: 'application/x-multi' })
    assert.ok(uploadId)
    const { parts, whole } = await uploadThree(store, key, uploadId)
    if (!gaps.noListParts) {
      const listedParts = await store.listParts!(key, uploadId)
      assert.deepEqual(listedParts.map((p) => p.partNumber), [1, 2, 3])
      assert.deepEqual(listedParts.map((p) => p.etag), parts.map((p) => p.etag))
      assert.deepEqual(listedParts.map((p) => p.size), [5 * MiB + 1, 5 * MiB, 1000])
    }
    assert.equal(await store.head(key), null, 'nothing is visible before completion')
    const meta = await store.completeMultipart!(key, uploadId, parts)
    assert.equal(meta.size, whole.length)
    assert.match(meta.etag ?? '', /^"[^"]+"$/)
    const got = await store.get(key)
    assert.ok(got)
    assert.equal(got.meta.size, whole.length)
    assert.equal(got.meta.etag, meta.etag)
    assert.equal(got.meta.contentType, 'application/x-multi')
    assert.equal(sha256(await readAll(got.body)), sha256(whole))
    if (!gaps.noListParts) await assert.rejects(store.listParts!(key, uploadId), NoSuchUploadError)
  })

  it('multipart: a part uploaded again replaces the earlier one', async () => {
    const store = getStore()
    const key = 'multipart/replaced.bin'
    const uploadId = await store.createMultipart!(key, { contentType: 'application/octet-stream' })
    await store.uploadPart!(key, uploadId, 1, body(Buffer.from('first version')), { size: 13 })
    const second = await store.uploadPart!(key, uploadId, 1, body(Buffer.from('second')), { size: 6 })
    if (!gaps.noListParts) assert.deepEqual((await store.listParts!(key, uploadId)).map((p) => [p.partNumber, p.etag, p.size]), [[1, second.etag, 6]])
    await store.completeMultipart!(key, uploadId, [second])
    const got = await store.get(key)
    assert.ok(got)
    assert.equal((await readAll(got.body)).toString(), 'second')
  })

  it('multipart: after abort the upload is gone (NoSuchUpload)', { skip: gaps.noUploadChecks }, async () => {
    const store = getStore()
    const key = 'multipart/aborted.bin'
    const uploadId = await store.createMultipart!(key, { contentType: 'application/octet-stream' })
    await store.uploadPart!(key, uploadId, 1, body(Buffer.from('part')), { size: 4 })
    await store.abortMultipart!(key, uploadId)
    await assert.rejects(store.listParts!(key, uploadId), NoSuchUploadError)
    await assert.rejects(store.uploadPart!(key, uploadId, 2, body(Buffer.from('more')), { size: 4 }), NoSuchUploadError)
    await assert.rejects(store.completeMultipart!(key, uploadId, [{ partNumber: 1, etag: '"x"' }]), NoSuchUploadError)
    assert.equal(await store.head(key), null)
  })

  it('multipart: an unknown upload id, or one of another key, is NoSuchUpload', { skip: gaps.noUploadChecks }, async () => {
    const store = getStore()
    await assert.rejects(store.uploadPart!('multipart/x.bin', 'no-such-upload', 1, body(Buffer.from('x')), { size: 1 }), NoSuchUploadError)
    await assert.rejects(store.listParts!('multipart/x.bin', 'no-such-upload'), NoSuchUploadError)
    await assert.rejects(store.abortMultipart!('multipart/x.bin', 'no-such-upload'), NoSuchUploadError)
    const uploadId = await store.createMultipart!('multipart/mine.bin', { contentType: 'application/octet-stream' })
    await assert.rejects(store.uploadPart!('multipart/other.bin', uploadId, 1, body(Buffer.from('x')), { size: 1 }), NoSuchUploadError)
    await store.abortMultipart!('multipart/mine.bin', uploadId)
  })

  it('multipart: completing with a wrong ETag fails and leaves no object', { skip: gaps.noUploadChecks }, async () => {
    const store = getStore()
    const key = 'multipart/wrong-etag.bin'
    const uploadId = await store.createMultipart!(key, { contentType: 'application/octet-stream' })
    const { parts } = await uploadThree(store, key, uploadId)
    const wrong = parts.map((p, i) => (i === 1 ? { ...p, etag: '"0123456789abcdef0123456789abcdef"' } : p))
    await assert.rejects(store.completeMultipart!(key, uploadId, wrong), InvalidPartError)
    assert.equal(await store.head(key), null)
    await assert.rejects(store.completeMultipart!(key, uploadId, [...parts, { partNumber: 4, etag: parts[0]!.etag }]), InvalidPartError)
    assert.equal(await store.head(key), null)
    await store.abortMultipart!(key, uploadId)
  })

  it('multipart: a part whose body is not its declared size is refused', async () => {
    const store = getStore()
    const key = 'multipart/sized.bin'
    const uploadId = await store.createMultipart!(key, { contentType: 'application/octet-stream' })
    await assert.rejects(store.uploadPart!(key, uploadId, 1, body(Buffer.from('four')), { size: 10 }), BadRequestError)
    await assert.rejects(store.uploadPart!(key, uploadId, 1, body(Buffer.from('four')), { size: 2 }), BadRequestError)
    const good = await store.uploadPart!(key, uploadId, 1, body(Buffer.from('four')), { size: 4 })
    if (!gaps.noListParts) assert.deepEqual((await store.listParts!(key, uploadId)).map((p) => [p.partNumber, p.size]), [[1, 4]])
    await store.completeMultipart!(key, uploadId, [good])
    assert.equal((await store.head(key))?.size, 4)
  })

  it('multipart: a part whose body fails rejects and is not kept', async () => {
    const store = getStore()
    const key = 'multipart/broken.bin'
    const uploadId = await store.createMultipart!(key, { contentType: 'application/octet-stream' })
    const broken = Readable.from(
      (async function* failing() {
        yield randomBytes(1000)
        throw new Error('client went away')
      })(),
    )
    await assert.rejects(store.uploadPart!(key, uploadId, 1, broken, { size: 2000 }))
    if (!gaps.noListParts) assert.deepEqual(await store.listParts!(key, uploadId), [])
    if (!gaps.noUploadChecks) await store.abortMultipart!(key, uploadId)
  })

  it('multipart: parts out of order, none, or a bad part number are refused before any store call', async () => {
    const store = getStore()
    const key = 'multipart/refused.bin'
    const uploadId = await store.createMultipart!(key, { contentType: 'application/octet-stream' })
    const parts = [
      { partNumber: 2, etag: '"a"' },
      { partNumber: 1, etag: '"b"' },
    ]
    await assert.rejects(store.completeMultipart!(key, uploadId, parts), InvalidPartError)
    await assert.rejects(store.completeMultipart!(key, uploadId, []), InvalidPartError)
    await assert.rejects(store.uploadPart!(key, uploadId, 0, body(Buffer.from('x')), { size: 1 }), BadRequestError)
    await assert.rejects(store.uploadPart!(key, uploadId, 10_001, body(Buffer.from('x')), { size: 1 }), BadRequestError)
    assert.equal(await store.head(key), null)
  })
}
