/**
 * Two disk hits of one key promoted at once (issue 10 review): the second joins the first's
 * promotion, and its own copy of the bytes must not become an unhandled rejection when its
 * client leaves mid-read.
 */
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { openDiskCache } from '../src/cache/disk/index.ts'
import { createHybridCache } from '../src/cache/hybrid.ts'
import { createMemoryCache } from '../src/cache/memory.ts'

const dirs: string[] = []
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 5 }))))

it('a disk hit that joins a running promotion and whose reader leaves mid-read rejects nothing unhandled', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-hybrid-race-'))
  dirs.push(dir)
  const disk = await openDiskCache({ path: dir, maxBytes: 64 * 1024 * 1024 })
  const cache = createHybridCache({ memory: createMemoryCache({ maxBytes: 64 * 1024 * 1024 }), disk, promoteAfter: 1 })
  const body = Buffer.alloc(4 * 1024 * 1024, 7)
  await disk.set('k', { size: body.length, contentType: 'application/octet-stream' }, body)

  const rejections: unknown[] = []
  const onRejection = (reason: unknown) => rejections.push(reason)
  process.on('unhandledRejection', onRejection)
  try {
    const first = await cache.get('k')
    const second = await cache.get('k')
    assert.equal(first?.tier, 'disk')
    assert.equal(second?.tier, 'disk')
    if (first?.tier !== 'disk' || second?.tier !== 'disk') return
    const a = first.open()
    const b = second.open()
    // The second reader leaves after its first chunk; the first reads to the end.
    b.once('data', () => b.destroy())
    b.resume()
    const chunks: Buffer[] = []
    for await (const chunk of a) chunks.push(chunk as Buffer)
    assert.ok(Buffer.concat(chunks).equals(body))
    await cache.settled()
    await sleep(20)
  } finally {
    process.off('unhandledRejection', onRejection)
    await cache.close()
  }
  assert.deepEqual(rejections, [])
})
