/**
 * The disk tier's own guarantees: restart recovery, never serving torn or corrupt entries,
 * the byte bound on what is really on disk, and disk errors absorbed (injected through the fs
 * layer, and a real ENOSPC on a tiny tmpfs when the sandbox lets us mount one).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, describe, it } from 'node:test'
import { type DiskCacheOptions, type DiskFs, type DiskOp, nodeFs, openDiskCache } from '../src/cache/disk/index.ts'
import type { CacheHit } from '../src/cache/types.ts'
import type { ByteRange, ObjectMeta } from '../src/stores/types.ts'

const KiB = 1024
const MiB = 1024 * KiB

const dirs: string[] = []
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))))

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-disk-'))
  dirs.push(dir)
  return dir
}

const metaOf = (body: Buffer, etag = '"e"'): ObjectMeta => ({ size: body.byteLength, contentType: 'application/x-test', etag, lastModified: new Date(1_700_000_000_000) })

/** Everything the client receives, and how the stream ended. */
async function drain(hit: CacheHit, range?: ByteRange): Promise<{ bytes: Buffer; error?: Error }> {
  assert.equal(hit.tier, 'disk')
  const chunks: Buffer[] = []
  try {
    for await (const chunk of hit.open(range)) chunks.push(chunk as Buffer)
    return { bytes: Buffer.concat(chunks) }
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error: error as Error }
  }
}

/** Entry and temp files under the cache root. */
async function files(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true })
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name))
}

/** Opens a tier recording every `onError` call. */
async function open(root: string, options: Partial<DiskCacheOptions> = {}) {
  const errors: [DiskOp, unknown][] = []
  const cache = await openDiskCache({ path: root, maxBytes: 4 * MiB, onError: (op, error) => errors.push([op, error]), ...options })
  return { cache, errors }
}

/** One entry written and the tier closed: returns its file and body for tampering. */
async function oneEntry(root: string, key: string, size: number) {
  const body = randomBytes(size)
  const { cache } = await open(root)
  await cache.set(key, metaOf(body), body)
  await cache.close()
  const [file] = (await files(root)).filter((f) => !f.endsWith('.tmp'))
  assert.ok(file)
  return { file, body }
}

describe('disk cache', () => {
  it('recovers its entries after a restart, byte-identical, ranges included', async () => {
    const root = await tempDir()
    const bodies = new Map<string, Buffer>()
    const first = await open(root)
    for (let i = 0; i < 25; i++) {
      const body = randomBytes(i === 0 ? 0 : i * 5 * KiB + i)
      bodies.set(`media\u0000dir ${i}/ké y.bin`, body)
      assert.equal(await first.cache.set(`media\u0000dir ${i}/ké y.bin`, metaOf(body, `"${i}"`), body), true)
    }
    const before = first.cache.stats()
    await first.cache.close()

    const second = await open(root)
    assert.deepEqual(second.cache.stats(), before)
    for (const [i, [key, body]] of [...bodies].entries()) {
      const hit = await second.cache.get(key)
      assert.ok(hit, key)
      assert.deepEqual(hit.meta, metaOf(body, `"${i}"`))
      if (body.length > 10) assert.deepEqual((await drain(hit, { start: 3, end: body.length - 5 })).bytes, body.subarray(3, body.length - 4))
      assert.deepEqual(await drain(hit), { bytes: body })
    }
    assert.deepEqual(second.errors, [])
  })

  it('removes leftover temp files on open and never serves them', async () => {
    const root = await tempDir()
    const { file } = await oneEntry(root, 'b\u0000crashed', 10 * KiB)
    // A crash mid-write leaves `<name>.tmp` (whole or torn) and no entry under the final name.
    await copyFile(file, `${file}.tmp`)
    await writeFile(file.replace(/\.[0-9a-f]{12}$/, '.0123456789ab.tmp'), (await readFile(file)).subarray(0, 100))
    await rm(file)
    const { cache } = await open(root)
    assert.equal(await cache.get('b\u0000crashed'), undefined)
    assert.equal(cache.stats().disk?.entries, 0)
    assert.deepEqual(await files(root), [])
  })

  it('drops a truncated entry and one with a damaged header', async () => {
    const root = await tempDir()
    const torn = await oneEntry(root, 'b\u0000torn', 50 * KiB)
    await truncate(torn.file, (await stat(torn.file)).size - 1)
    const { cache, errors } = await open(root)
    assert.equal(await cache.get('b\u0000torn'), undefined)
    assert.deepEqual(await files(root), [])
    assert.deepEqual(errors.map(([op]) => op), ['recover'])

    const root2 = await tempDir()
    const damaged = await oneEntry(root2, 'b\u0000header', 5 * KiB)
    const bytes = await readFile(damaged.file)
    bytes[12] = 0x7b // inside the JSON header
    await writeFile(damaged.file, bytes)
    const reopened = await open(root2)
    assert.equal(await reopened.cache.get('b\u0000header'), undefined)
    assert.deepEqual(await files(root2), [])
  })

  it('a corrupted body byte is never served as a complete body: the stream errors and the entry is gone', async () => {
    const root = await tempDir()
    const size = 2 * MiB + 12_345
    const { file, body } = await oneEntry(root, 'b\u0000rot', size)
    const bytes = await readFile(file)
    const flipAt = bytes.length - size + 100 // the body's 101st byte
    bytes[flipAt] = bytes[flipAt]! ^ 0xff
    await writeFile(file, bytes)

    const { cache, errors } = await open(root)
    const hit = await cache.get('b\u0000rot') // served lazily: verified on this first read
    assert.ok(hit)
    const got = await drain(hit)
    assert.equal(got.error?.name, 'ChecksumError')
    // The last chunk is held back until the digest matches, so the reader never has all `size` bytes.
    assert.ok(got.bytes.length < body.length, `${got.bytes.length} of ${body.length} bytes sent`)
    assert.equal(await cache.get('b\u0000rot'), undefined)
    assert.deepEqual(errors.map(([op]) => op), ['verify'])
    await cache.close()
    assert.deepEqual(await files(root), [])
  })

  it('a ranged read of a corrupted entry sends nothing: the whole body is verified first', async () => {
    const root = await tempDir()
    const { file } = await oneEntry(root, 'b\u0000rot-range', 300 * KiB)
    const bytes = await readFile(file)
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1
    await writeFile(file, bytes)
    const { cache, errors } = await open(root)
    const hit = await cache.get('b\u0000rot-range')
    assert.ok(hit)
    const got = await drain(hit, { start: 0, end: 99 })
    assert.equal(got.error?.name, 'ChecksumError')
    assert.equal(got.bytes.length, 0)
    assert.equal(await cache.get('b\u0000rot-range'), undefined)
    assert.deepEqual(errors.map(([op]) => op), ['verify'])
  })

  it('keeps the newer file when a crash left two versions of one key', async () => {
    const root = await tempDir()
    let clock = 1000
    const { cache } = await open(root, { now: () => clock })
    const old = randomBytes(1000)
    await cache.set('b\u0000k', metaOf(old, '"old"'), old)
    const [oldFile] = await files(root)
    assert.ok(oldFile)
    const saved = await readFile(oldFile)
    clock = 2000
    const fresh = randomBytes(1000)
    await cache.set('b\u0000k', metaOf(fresh, '"new"'), fresh)
    await cache.close()
    await writeFile(oldFile, saved) // the unlink of the replaced file never happened
    assert.equal((await files(root)).length, 2)
    const reopened = await open(root)
    const hit = await reopened.cache.get('b\u0000k')
    assert.equal(hit?.meta.etag, '"new"')
    assert.deepEqual((await drain(hit)).bytes, fresh)
    assert.equal((await files(root)).length, 1)
  })

  it('holds its bound on what is really on disk, and shrinks to a smaller bound on reopen', async () => {
    const root = await tempDir()
    const { cache } = await open(root, { maxBytes: 512 * KiB })
    for (let i = 0; i < 200; i++) {
      const body = randomBytes(1 + ((i * 7919) % (30 * KiB)))
      assert.equal(await cache.set(`b\u0000${i}`, metaOf(body), body), true)
    }
    const onDisk = async () => {
      const all = await files(root)
      const sizes = await Promise.all(all.map(async (f) => Math.ceil((await stat(f)).size / 4096) * 4096))
      return { count: all.length, bytes: sizes.reduce((a, b) => a + b, 0) }
    }
    const stats = cache.stats().disk!
    assert.deepEqual(await onDisk(), { count: stats.entries, bytes: stats.bytes })
    assert.ok(stats.bytes <= 512 * KiB)
    await cache.close()

    const smaller = await open(root, { maxBytes: 128 * KiB })
    const shrunk = smaller.cache.stats().disk!
    assert.ok(shrunk.bytes <= 128 * KiB && shrunk.entries > 0)
    assert.deepEqual(await onDisk(), { count: shrunk.entries, bytes: shrunk.bytes })
  })

  it('absorbs write errors (ENOSPC): set is false, reads go on, writes pause after 3 in a row', async () => {
    const root = await tempDir()
    let full = false
    let writeOpens = 0
    const fs: DiskFs = {
      ...nodeFs,
      open: async (file, flags, mode) => {
        if (flags === 'wx') writeOpens++
        if (full && flags === 'wx') throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC', syscall: 'write' })
        return nodeFs.open(file, flags, mode)
      },
    }
    let clock = 0
    const { cache, errors } = await open(root, { fs, now: () => clock })
    const kept = randomBytes(4 * KiB)
    await cache.set('b\u0000kept', metaOf(kept), kept)
    full = true
    for (let i = 0; i < 3; i++) assert.equal(await cache.set(`b\u0000new${i}`, metaOf(kept), kept), false)
    assert.deepEqual(errors.map(([op]) => op), ['write', 'write', 'write'])
    assert.deepEqual((await drain((await cache.get('b\u0000kept'))!)).bytes, kept)
    assert.ok((await files(root)).every((f) => !f.endsWith('.tmp')))

    full = false
    const opensBefore = writeOpens
    assert.equal(await cache.set('b\u0000paused', metaOf(kept), kept), false, 'cool-down: memory-only')
    assert.equal(writeOpens, opensBefore, 'no write attempted during the cool-down')
    clock += 30_000
    assert.equal(await cache.set('b\u0000resumed', metaOf(kept), kept), true)
  })

  it('refuses a write it cannot make (breaker open, over the bound, header too long) before hashing the body', async () => {
    /** A chunk-list body whose walks are counted: the length check walks it once, hashing would walk it again. */
    const counted = (body: Buffer) => {
      const chunks = [body.subarray(0, body.length >> 1), body.subarray(body.length >> 1)]
      const walks = { count: 0 }
      const values = chunks[Symbol.iterator].bind(chunks)
      Object.defineProperty(chunks, Symbol.iterator, { value: () => (walks.count++, values()) })
      return { chunks, walks, meta: metaOf(body) }
    }
    const root = await tempDir()
    let full = false
    const fs: DiskFs = {
      ...nodeFs,
      open: async (file, flags, mode) => {
        if (full && flags === 'wx') throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO', syscall: 'open' })
        return nodeFs.open(file, flags, mode)
      },
    }
    const { cache } = await open(root, { fs, maxBytes: 64 * KiB, now: () => 0 })
    const fits = counted(randomBytes(8 * KiB))
    assert.equal(await cache.set('b\u0000fits', fits.meta, fits.chunks), true)
    assert.ok(fits.walks.count >= 2, `a stored body is hashed (${fits.walks.count} walks)`)

    const huge = counted(randomBytes(64 * KiB))
    assert.equal(await cache.set('b\u0000huge', huge.meta, huge.chunks), false)
    assert.equal(huge.walks.count, 1, 'over the bound: only the length check walked the body')

    const longKey = counted(randomBytes(KiB))
    assert.equal(await cache.set(`b\u0000${'k'.repeat(70 * KiB)}`, longKey.meta, longKey.chunks), false)
    assert.equal(longKey.walks.count, 1, 'header over its limit: only the length check walked the body')

    full = true
    const failing = randomBytes(KiB)
    for (let i = 0; i < 3; i++) assert.equal(await cache.set(`b\u0000fail${i}`, metaOf(failing), failing), false)
    full = false
    const paused = counted(randomBytes(8 * KiB))
    assert.equal(await cache.set('b\u0000paused', paused.meta, paused.chunks), false)
    assert.equal(paused.walks.count, 1, 'breaker open: only the length check walked the body')
    assert.equal(await cache.get('b\u0000huge'), undefined)
    assert.ok(await cache.get('b\u0000fits'))
  })

  it('absorbs read errors: get is undefined for the broken entry, others still served', async () => {
    const root = await tempDir()
    let broken = ''
    const fs: DiskFs = {
      ...nodeFs,
      stat: async (file) => {
        if (file === broken) throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO', syscall: 'stat' })
        return nodeFs.stat(file)
      },
    }
    const { cache, errors } = await open(root, { fs })
    const body = randomBytes(1000)
    await cache.set('b\u0000bad', metaOf(body), body)
    const [badFile] = await files(root)
    await cache.set('b\u0000good', metaOf(body), body)
    broken = badFile!
    assert.equal(await cache.get('b\u0000bad'), undefined)
    assert.deepEqual((await drain((await cache.get('b\u0000good'))!)).bytes, body)
    assert.deepEqual(errors.map(([op]) => op), ['read'])

    await cache.close()
    const remaining = await files(root)
    assert.equal(remaining.length, 1, 'the broken entry was dropped and its file unlinked')
    await rm(remaining[0]!) // the good entry's file vanishes behind the tier's back
    assert.equal(await cache.get('b\u0000good'), undefined)
    assert.equal(cache.stats().disk?.entries, 0)
  })

  it('a delete during a write wins: the written file is discarded', async () => {
    const root = await tempDir()
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const fs: DiskFs = { ...nodeFs, rename: async (from, to) => (await gate, nodeFs.rename(from, to)) }
    const { cache } = await open(root, { fs })
    const body = randomBytes(1000)
    const writing = cache.set('b\u0000k', metaOf(body), body)
    await new Promise((resolve) => setTimeout(resolve, 20))
    await cache.delete('b\u0000k')
    release()
    assert.equal(await writing, false)
    assert.equal(await cache.get('b\u0000k'), undefined)
    assert.deepEqual(await files(root), [])
  })

  it('a real ENOSPC on a tiny tmpfs: set is false, no temp file left, earlier entries served', async (t) => {
    const root = await tempDir()
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', root], { stdio: 'ignore' })
    } catch {
      t.skip('cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN); the injected ENOSPC test covers the logic')
      return
    }
    try {
      const { cache, errors } = await open(root)
      const small = randomBytes(64 * KiB)
      assert.equal(await cache.set('b\u0000small', metaOf(small), small), true)
      const big = randomBytes(400 * KiB)
      assert.equal(await cache.set('b\u0000big', metaOf(big), big), false)
      assert.deepEqual(errors.map(([op, error]) => [op, (error as NodeJS.ErrnoException).code]), [['write', 'ENOSPC']])
      assert.ok((await files(root)).every((f) => !f.endsWith('.tmp')))
      assert.deepEqual((await drain((await cache.get('b\u0000small'))!)).bytes, small)
      await cache.close()
    } finally {
      execFileSync('umount', [root])
    }
  })
})
