/**
 * The disk tier through the whole gateway: entries survive a restart and are served with no
 * upstream request; a full disk degrades to upstream reads, never to failed requests.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createS3Store } from '../src/stores/s3.ts'
import type { Store } from '../src/stores/types.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { type S3rverHandle, startS3rver } from './helpers/emulators.ts'
import { BEARER, type TestGateway, startGateway, tempDir } from './helpers/gateway.ts'

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')
const auth = { Authorization: `Bearer ${BEARER}` }
const KiB = 1024

async function stats(gw: TestGateway) {
  return (await (await fetch(`${gw.url}/stats`)).json()) as { cache: { tiers: Record<string, { entries: number; bytes: number; max_bytes: number }>; disk_errors: number } }
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await sleep(25)
  }
  assert.fail(`timed out waiting for ${what}`)
}

describe('disk tier through the gateway', () => {
  let s3: S3rverHandle
  let proxy: CountingProxy
  let store: Store
  const objects = new Map<string, Buffer>()

  const start = (diskPath: string, maxDisk = '64MiB') =>
    startGateway({
      stores: new Map([['objs', store]]),
      raw: { stores: { objs: { type: 'fs', root: '/nonexistent' } }, cache: { max_memory: '8MiB', max_object_size: '2MiB', max_disk: maxDisk, disk_path: diskPath } },
    })

  before(async () => {
    s3 = await startS3rver()
    proxy = await startCountingProxy(s3.endpoint)
    store = createS3Store({ id: 'objs', bucket: s3.bucket, endpoint: proxy.url, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey, maxAttempts: 1 })
    for (let i = 0; i < 12; i++) {
      const bytes = randomBytes(100 * KiB + i)
      objects.set(`d/${i}.bin`, bytes)
      await store.put(`d/${i}.bin`, Readable.from([bytes]), { contentType: 'application/octet-stream' })
    }
  })
  after(async () => {
    await proxy?.close()
    await s3?.close()
  })

  it('restart recovery: entries written before a restart are hits afterwards, with zero upstream requests', async () => {
    const diskPath = await tempDir()
    const first = await start(diskPath)
    try {
      for (const key of objects.keys()) assert.equal((await fetch(`${first.url}/objs/${key}`, { headers: auth }).then((r) => r.arrayBuffer())).byteLength, objects.get(key)!.length)
      await waitFor(async () => (await stats(first)).cache.tiers.disk?.entries === objects.size, 'disk writes')
    } finally {
      await first.close()
    }
    // Leftovers of a crash: a torn temp file next to the entries.
    const sub = (await readdir(diskPath, { withFileTypes: true })).find((d) => d.isDirectory())!.name
    await writeFile(path.join(diskPath, sub, '.tmp-crashed-write'), randomBytes(1000))

    proxy.reset()
    const second = await start(diskPath)
    try {
      assert.equal((await stats(second)).cache.tiers.disk?.entries, objects.size)
      for (const [key, bytes] of objects) {
        const res = await fetch(`${second.url}/objs/${key}`, { headers: auth })
        assert.equal(res.status, 200)
        assert.equal(res.headers.get('x-cg-status'), 'hit=1')
        assert.equal(sha(Buffer.from(await res.arrayBuffer())), sha(bytes))
        // A range of a disk hit, too.
        const ranged = await fetch(`${second.url}/objs/${key}`, { headers: { ...auth, Range: 'bytes=100-199' } })
        assert.equal(ranged.status, 206)
        assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), bytes.subarray(100, 200))
      }
      assert.equal(proxy.counts.requests, 0, 'no upstream request after the restart')
    } finally {
      await second.close()
    }
  })

  it('pages of a large object persist too: ranges are served after a restart with no upstream request', async () => {
    const big = randomBytes(3 * 1024 * KiB + 7)
    await store.put('big/paged.bin', Readable.from([big]), { contentType: 'application/octet-stream' })
    const ranges = [
      [0, 99],
      [2_600_000, 2_700_000],
      [big.length - 50, big.length - 1],
    ] as const
    const diskPath = await tempDir()
    const first = await start(diskPath)
    try {
      for (const [a, b] of ranges) await fetch(`${first.url}/objs/big/paged.bin`, { headers: { ...auth, Range: `bytes=${a}-${b}` } }).then((r) => r.arrayBuffer())
      // Three pages (1 MiB each at this memory size) and the object's metadata record.
      await waitFor(async () => (await stats(first)).cache.tiers.disk?.entries === 4, 'pages on disk')
    } finally {
      await first.close()
    }
    proxy.reset()
    const second = await start(diskPath)
    try {
      for (const [a, b] of ranges) {
        const res = await fetch(`${second.url}/objs/big/paged.bin`, { headers: { ...auth, Range: `bytes=${a}-${b}` } })
        assert.equal(res.status, 206)
        assert.equal(res.headers.get('x-cg-status'), 'hit=1')
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), big.subarray(a, b + 1))
      }
      assert.equal(proxy.counts.requests, 0)
    } finally {
      await second.close()
    }
  })

  it('the disk bound holds while many objects pass through', async () => {
    const gw = await start(await tempDir(), '512KiB')
    try {
      for (const key of objects.keys()) await fetch(`${gw.url}/objs/${key}`, { headers: auth }).then((r) => r.arrayBuffer())
      await sleep(200)
      const disk = (await stats(gw)).cache.tiers.disk!
      assert.ok(disk.bytes <= 512 * KiB, `${disk.bytes} bytes on disk`)
      assert.ok(disk.entries >= 2 && disk.entries < objects.size)
    } finally {
      await gw.close()
    }
  })

  it('a full disk (tiny tmpfs) → every request still succeeds from upstream, errors counted', async (t) => {
    const diskPath = path.join(await tempDir(), 'tiny')
    await mkdir(diskPath)
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', diskPath], { stdio: 'ignore' })
    } catch {
      t.skip('cannot mount a tmpfs here; test/disk-cache.test.ts covers injected ENOSPC')
      return
    }
    const gw = await start(diskPath, '64MiB')
    try {
      for (let round = 0; round < 2; round++) {
        for (const [key, bytes] of objects) {
          const res = await fetch(`${gw.url}/objs/${key}`, { headers: auth })
          assert.equal(res.status, 200)
          assert.equal(sha(Buffer.from(await res.arrayBuffer())), sha(bytes))
        }
      }
      await sleep(100)
      const s = await stats(gw)
      assert.ok(s.cache.disk_errors > 0, 'disk errors are counted')
      assert.ok(s.cache.tiers.disk!.bytes <= 128 * KiB)
    } finally {
      await gw.close()
      execFileSync('umount', [diskPath])
    }
  })
})
