/**
 * A disk cache entry whose file disappears between the lookup and the open (evicted or
 * replaced by a concurrent request): the read falls back to the store, but only to the same
 * object version, and never sends a half response.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { openDiskCache } from '../src/cache/disk/index.ts'
import { cacheKey } from '../src/cache/keys.ts'
import type { Cache } from '../src/cache/types.ts'
import { UpstreamError } from '../src/errors.ts'
import { writeObject } from '../src/http/object/read-response.ts'
import { createLogger } from '../src/log.ts'
import { Telemetry } from '../src/metrics.ts'
import { createObjectService } from '../src/objects/index.ts'
import type { ByteRange, ObjectMeta, Store } from '../src/stores/types.ts'

const dirs: string[] = []
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 5 }))))

/** A store holding one object; counts GETs and can be given a new version. */
function scriptedStore(bytes: Buffer) {
  let current = { bytes, meta: { size: bytes.length, contentType: 'application/octet-stream', etag: '"v1"' } as ObjectMeta }
  const gets: (ByteRange | undefined)[] = []
  const store: Store = {
    type: 'fs',
    id: 's',
    head: async () => current.meta,
    async get(_key, opts) {
      gets.push(opts?.range)
      const range = opts?.range
      const body = range ? current.bytes.subarray(range.start, range.end + 1) : current.bytes
      return { meta: current.meta, body: Readable.from([body]), range }
    },
    put: async () => current.meta,
  }
  return { store, gets, replace: (next: Buffer) => (current = { bytes: next, meta: { ...current.meta, size: next.length, etag: '"v2"' } }) }
}

async function setup(options: { maxObjectSize: number; pageSize?: number }, bytes: Buffer) {
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-vanish-'))
  dirs.push(dir)
  const disk = await openDiskCache({ path: dir, maxBytes: 64 * 1024 * 1024 })
  /** Removes every entry file behind the tier's back, as an eviction racing a read would. */
  const vanish = async () => {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true })
    await Promise.all(entries.filter((e) => e.isFile()).map((e) => rm(path.join(e.parentPath, e.name))))
  }
  const race = { afterLookup: false }
  /** The disk tier, except that with `race.afterLookup` every hit's file is gone once it is found. */
  const cache: Cache = {
    ...disk,
    async get(key) {
      const hit = await disk.get(key)
      if (hit && race.afterLookup) await vanish()
      return hit
    },
  }
  const objects = createObjectService({ cache, maxUploadSize: 1 << 24, telemetry: new Telemetry(), logger: createLogger('silent'), ...options })
  const scripted = scriptedStore(bytes)
  const settle = async () => {
    while (objects.inflightFills() > 0) await sleep(5)
    await sleep(20)
  }
  return { objects, cache: disk, vanish, race, settle, ...scripted }
}

const text = async (body: unknown) => Buffer.concat(await (body as Readable).toArray())

describe('a disk entry that vanishes between lookup and open', () => {
  it('a whole object is read from the store instead, when the store still has that version', async () => {
    const bytes = randomBytes(100_000)
    const { objects, store, gets, vanish, settle, cache } = await setup({ maxObjectSize: 1 << 20 }, bytes)
    assert.deepEqual(await text(await (await objects.open(store, 'k', false))!.read()), bytes)
    await settle()
    const hit = await objects.open(store, 'k', false)
    assert.equal(hit!.result, 'hit')
    assert.equal(gets.length, 1)
    await vanish()
    assert.deepEqual(await text(await hit!.read()), bytes)
    assert.equal(gets.length, 2, 'one GET to the store for the vanished entry')
    await cache.close?.()
  })

  it('a whole object replaced upstream meanwhile fails before any byte (no old or mixed bytes)', async () => {
    const bytes = randomBytes(100_000)
    const { objects, store, vanish, settle, replace, cache } = await setup({ maxObjectSize: 1 << 20 }, bytes)
    await text(await (await objects.open(store, 'k', false))!.read())
    await settle()
    const hit = await objects.open(store, 'k', false)
    await vanish()
    replace(randomBytes(100_000))
    await assert.rejects(hit!.read(), (error: unknown) => error instanceof UpstreamError && /changed upstream/.test(error.message))
    await cache.close?.()
  })

  it('a page is fetched again from the store, and the range is byte-exact', async () => {
    const bytes = randomBytes(64 * 1024)
    const { objects, store, gets, race, settle, cache } = await setup({ maxObjectSize: 1024, pageSize: 16 * 1024 }, bytes)
    const range = { start: 1000, end: 40_000 }
    assert.deepEqual(await text(await (await objects.open(store, 'k', true))!.read(range)), bytes.subarray(1000, 40_001))
    await settle()
    const before = gets.length
    const paged = await objects.open(store, 'k', true)
    assert.equal(await paged!.cached([range]), true, 'the pages are on disk')
    // Pages are looked up as the read reaches them: each one vanishes right after its lookup.
    race.afterLookup = true
    assert.deepEqual(await text(await paged!.read(range)), bytes.subarray(1000, 40_001))
    assert.equal(gets.length - before, 3, 'each of the 3 vanished pages fetched once')
    await settle()
    await cache.close?.()
  })
})

describe('a client that leaves while a disk hit is being opened', () => {
  it('no file stays open, for one range and for multipart/byteranges', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-leave-'))
    dirs.push(dir)
    const bytes = randomBytes(32 * 1024 * 1024)
    const meta: ObjectMeta = { size: bytes.length, contentType: 'application/octet-stream', etag: '"v1"' }
    const store: Store = { type: 'fs', id: 's', head: async () => meta, get: async () => ({ meta, body: Readable.from([bytes]) }), put: async () => meta }
    const first = await openDiskCache({ path: dir, maxBytes: 256 * 1024 * 1024 })
    await first.set(cacheKey('s', 'k'), meta, bytes)
    await first.close?.()
    let disk = await openDiskCache({ path: dir, maxBytes: 256 * 1024 * 1024 })
    const cache: Cache = { get: (key) => disk.get(key), set: (...args) => disk.set(...args), delete: (key) => disk.delete(key), stats: () => disk.stats() }
    const objects = createObjectService({ cache, maxObjectSize: 64 * 1024 * 1024, maxUploadSize: 1 << 30, telemetry: new Telemetry(), logger: createLogger('silent') })
    const server = createServer((req, res) => {
      void objects.open(store, 'k', true).then((object) => writeObject(res, object!, req.headers, { kind: 'bearer' }, Date.now(), createLogger('silent')))
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    const openFiles = async () => {
      let n = 0
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
        if (target.startsWith(dir)) n++
      }
      return n
    }
    try {
      for (const range of ['bytes=0-9999999', 'bytes=0-9999999,20000000-29999999']) {
        // A reopened tier has not verified the entry: a ranged read hashes all 32 MiB first,
        // which is the window in which the client leaves.
        await disk.close?.()
        disk = await openDiskCache({ path: dir, maxBytes: 256 * 1024 * 1024 })
        const req = request({ port, host: '127.0.0.1', headers: { range } })
        req.on('error', () => {})
        req.end()
        await sleep(10)
        req.destroy()
        let open = await openFiles()
        for (const deadline = Date.now() + 5000; open > 0 && Date.now() < deadline; open = await openFiles()) await sleep(50)
        assert.equal(open, 0, `${range}: a cache file stayed open after the client left`)
      }
    } finally {
      server.close()
      await disk.close?.()
    }
  })
})
