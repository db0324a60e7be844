/**
 * The store decorators and StoreAdmin (list, delete, copy, multipart): a wrapper has a method
 * exactly when its store does, passes it through (to the primary, for fallback groups),
 * labels it in metrics, and bounds it by the deadline where a deadline applies.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { UpstreamError, type UpstreamErrorKind } from '../src/errors.ts'
import { createFsStore } from '../src/stores/fs.ts'
import { decorateStore } from '../src/stores/registry.ts'
import { StoreHealth } from '../src/stores/store-health.ts'
import type { ObjectMeta, Store, StoreAdmin } from '../src/stores/types.ts'
import { withDeadline } from '../src/stores/with-deadline.ts'
import { withFallback } from '../src/stores/with-fallback.ts'
import { withHedge } from '../src/stores/with-hedge.ts'
import { withMetrics } from '../src/stores/with-metrics.ts'

const ADMIN = ['list', 'delete', 'copy', 'createMultipart', 'uploadPart', 'completeMultipart', 'abortMultipart', 'listParts'] as const satisfies readonly (keyof StoreAdmin)[]
const meta: ObjectMeta = { size: 3, contentType: 'text/plain', etag: '"e"' }
const body = (text: string) => Readable.from([Buffer.from(text)])

/** A store with get, head and put only (as the test doubles elsewhere are). */
function plain(id = 'plain'): Store {
  return {
    type: 'plain',
    id,
    head: async () => meta,
    get: async () => null,
    put: async () => meta,
  }
}

function recorder() {
  const ok: string[] = []
  const errors: [string, UpstreamErrorKind][] = []
  return {
    ok,
    errors,
    upstreamOk: (_store: string, op: string) => void ok.push(op),
    upstreamError: (_store: string, op: string, kind: UpstreamErrorKind) => void errors.push([op, kind]),
    hedgeSent() {},
    hedgeWon() {},
    hedgeThreshold() {},
  }
}

const hedging = { quantile: 0.5, minSamples: 1, maxRatio: 1 }

describe('decorators and StoreAdmin', () => {
  let root: string
  let fs: Store
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'cachegate-admin-decorators-'))
    fs = createFsStore({ id: 'local', root })
  })
  after(() => rm(root, { recursive: true, force: true }))

  const wrappers: [string, (store: Store) => Store][] = [
    ['withDeadline', (store) => withDeadline(store, { timeoutMs: 5000 })],
    ['withMetrics', (store) => withMetrics(store, recorder())],
    ['withHedge', (store) => withHedge(store, hedging)],
    ['withFallback', (store) => withFallback({ store, health: new StoreHealth(store.id) }, [{ store: plain('other'), health: new StoreHealth('other') }])],
    ['decorateStore', (store) => decorateStore(store, { timeoutMs: 5000, telemetry: recorder(), hedge: hedging })],
  ]
  for (const [name, wrap] of wrappers) {
    it(`${name}: no StoreAdmin method over a store without them, every one over a store with them`, async () => {
      const bare = wrap(plain())
      for (const method of ADMIN) assert.equal(bare[method], undefined, `${name} over a plain store has no ${method}`)
      const full = wrap(fs)
      for (const method of ADMIN) assert.equal(typeof full[method], 'function', `${name} over fs has ${method}`)
      await full.put(`${name}/a.txt`, body('abc'), { contentType: 'text/plain' })
      const page = await full.list!({ prefix: `${name}/`, maxKeys: 10 })
      assert.deepEqual(page.objects.map((o) => o.key), [`${name}/a.txt`])
      const uploadId = await full.createMultipart!(`${name}/m.bin`, { contentType: 'application/octet-stream' })
      const part = await full.uploadPart!(`${name}/m.bin`, uploadId, 1, body('part'), { size: 4 })
      assert.deepEqual((await full.listParts!(`${name}/m.bin`, uploadId)).map((p) => p.etag), [part.etag])
      assert.equal((await full.completeMultipart!(`${name}/m.bin`, uploadId, [part])).size, 4)
      assert.equal((await full.copy!(`${name}/m.bin`, `${name}/copy.bin`))?.size, 4)
      await full.delete!(`${name}/copy.bin`)
      assert.equal(await fs.head(`${name}/copy.bin`), null)
    })
  }

  it('withMetrics labels each StoreAdmin call, and counts its failures by kind', async () => {
    const telemetry = recorder()
    const store = withMetrics(fs, telemetry)
    await store.put('metrics/a.txt', body('abc'), { contentType: 'text/plain' })
    await store.list!({ prefix: 'metrics/', maxKeys: 10 })
    await store.copy!('metrics/a.txt', 'metrics/b.txt')
    await store.delete!('metrics/b.txt')
    const uploadId = await store.createMultipart!('metrics/m.bin', { contentType: 'text/plain' })
    const part = await store.uploadPart!('metrics/m.bin', uploadId, 1, body('x'), { size: 1 })
    await store.listParts!('metrics/m.bin', uploadId)
    await store.completeMultipart!('metrics/m.bin', uploadId, [part])
    const other = await store.createMultipart!('metrics/n.bin', { contentType: 'text/plain' })
    await store.abortMultipart!('metrics/n.bin', other)
    assert.deepEqual(telemetry.ok, ['put', 'list', 'copy', 'delete', 'create-multipart', 'upload-part', 'list-parts', 'complete-multipart', 'create-multipart', 'abort-multipart'])
    const failing = withMetrics({ ...plain(), list: async () => Promise.reject(new UpstreamError('plain', 'server', 'list failed')) }, telemetry)
    await assert.rejects(failing.list!({ maxKeys: 1 }), UpstreamError)
    assert.deepEqual(telemetry.errors, [['list', 'server']])
  })

  it('withDeadline bounds list and the other short calls, and an upload part the store stops reading', async () => {
    const signals: AbortSignal[] = []
    const never = (signal?: AbortSignal) => {
      if (signal) signals.push(signal)
      return new Promise<never>(() => {})
    }
    const stuck: Store = {
      ...plain('stuck'),
      list: (opts) => never(opts.signal),
      delete: (_key, opts) => never(opts?.signal),
      createMultipart: (_key, opts) => never(opts.signal),
      listParts: (_key, _id, opts) => never(opts?.signal),
      abortMultipart: (_key, _id, opts) => never(opts?.signal),
      // Takes nothing of the body, says nothing.
      uploadPart: (_key, _id, _n, _body, opts) => never(opts.signal),
    }
    const timed = withDeadline(stuck, { timeoutMs: 80 })
    const isTimeout = (error: unknown) => error instanceof UpstreamError && error.kind === 'timeout' && error.store === 'stuck'
    await assert.rejects(timed.list!({ maxKeys: 1 }), isTimeout)
    await assert.rejects(timed.delete!('k'), isTimeout)
    await assert.rejects(timed.createMultipart!('k', { contentType: 'text/plain' }), isTimeout)
    await assert.rejects(timed.listParts!('k', 'u'), isTimeout)
    await assert.rejects(timed.abortMultipart!('k', 'u'), isTimeout)
    await assert.rejects(timed.uploadPart!('k', 'u', 1, body('unread part'), { size: 11 }), isTimeout)
    assert.equal(signals.length, 6)
    assert.ok(signals.every((signal) => signal.aborted))
    assert.equal(timed.copy, undefined, 'the store has no copy: neither has the wrapper')
  })

  it('withDeadline leaves copy and completeMultipart unbounded (the store works in proportion to the size)', async () => {
    const slow: Store = {
      ...plain('slow'),
      copy: async () => (await sleep(150), meta),
      completeMultipart: async () => (await sleep(150), meta),
    }
    const timed = withDeadline(slow, { timeoutMs: 50 })
    assert.deepEqual(await timed.copy!('a', 'b'), meta)
    assert.deepEqual(await timed.completeMultipart!('k', 'u', [{ partNumber: 1, etag: '"e"' }]), meta)
  })

  it('withHedge never hedges a StoreAdmin call', async () => {
    let lists = 0
    const store: Store = {
      ...plain('counted'),
      list: async () => {
        lists++
        await sleep(60)
        return { objects: [], commonPrefixes: [], isTruncated: false }
      },
    }
    const hedged = withHedge(store, { ...hedging, now: () => performance.now() })
    // Teach the sketch a fast GET first: a hedge would be due after ~0 ms.
    await hedged.get('k')
    await hedged.list!({ maxKeys: 1 })
    assert.equal(lists, 1)
  })

  it('withFallback sends list, delete, copy and multipart to the primary only', async () => {
    const otherRoot = await mkdtemp(path.join(tmpdir(), 'cachegate-admin-fallback-'))
    try {
      const replica = createFsStore({ id: 'replica', root: otherRoot })
      await replica.put('fb/only-in-replica.txt', body('r'), { contentType: 'text/plain' })
      const group = withFallback({ store: fs, health: new StoreHealth('local') }, [{ store: replica, health: new StoreHealth('replica') }])
      // Reads fall back; admin calls do not.
      assert.ok(await group.head('fb/only-in-replica.txt'))
      assert.deepEqual((await group.list!({ prefix: 'fb/', maxKeys: 10 })).objects, [])
      assert.equal(await group.copy!('fb/only-in-replica.txt', 'fb/copy.txt'), null)
      const uploadId = await group.createMultipart!('fb/m.bin', { contentType: 'text/plain' })
      const part = await group.uploadPart!('fb/m.bin', uploadId, 1, body('m'), { size: 1 })
      await group.completeMultipart!('fb/m.bin', uploadId, [part])
      assert.ok(await fs.head('fb/m.bin'))
      assert.equal(await replica.head('fb/m.bin'), null)
      await group.delete!('fb/only-in-replica.txt')
      assert.ok(await replica.head('fb/only-in-replica.txt'))
    } finally {
      await rm(otherRoot, { recursive: true, force: true })
    }
  })
})
