/**
 * The start-up store decorators on their own: metrics labels, and the deadline's three
 * bounds (an answer, a body the reader waits on, a PUT body the store stops taking), with
 * scripted stores (a `type` of their own) and a real fs store.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { UpstreamError } from '../src/errors.ts'
import { Telemetry } from '../src/metrics.ts'
import { createFsStore } from '../src/stores/fs.ts'
import type { ObjectMeta, Store } from '../src/stores/types.ts'
import { withDeadline } from '../src/stores/with-deadline.ts'
import { withMetrics } from '../src/stores/with-metrics.ts'

const isTimeout = (error: unknown) => error instanceof UpstreamError && error.kind === 'timeout' && error.store === 'scripted'
const meta: ObjectMeta = { size: 3, contentType: 'text/plain', etag: '"e"' }

/** A store that never answers unless told how; records the signals it was given. */
function scripted(overrides: Partial<Store> = {}): Store & { signals: AbortSignal[] } {
  const signals: AbortSignal[] = []
  const never = (signal?: AbortSignal) => {
    if (signal) signals.push(signal)
    return new Promise<never>(() => {})
  }
  return {
    type: 'scripted',
    id: 'scripted',
    signals,
    head: (_key, opts) => never(opts?.signal),
    get: (_key, opts) => never(opts?.signal),
    put: (_key, _body, opts) => never(opts.signal),
    ...overrides,
  }
}

describe('withDeadline', () => {
  it('a call that does not answer rejects at the deadline and its signal is aborted, even if the store ignores it', async () => {
    const store = scripted()
    const timed = withDeadline(store, { timeoutMs: 100 })
    const started = performance.now()
    await assert.rejects(timed.head('k'), isTimeout)
    await assert.rejects(timed.get('k', { op: 'get-page' }), (error: unknown) => isTimeout(error) && /get-page/.test((error as Error).message))
    assert.ok(performance.now() - started < 400)
    assert.equal(store.signals.length, 2)
    assert.ok(store.signals.every((signal) => signal.aborted && isTimeout(signal.reason)))
  })

  it("the caller's signal still reaches the store", async () => {
    const store = scripted()
    const controller = new AbortController()
    const pending = withDeadline(store, { timeoutMs: 200 }).head('k', { signal: controller.signal })
    controller.abort(new Error('client gone'))
    assert.ok(store.signals[0]?.aborted)
    // This store ignores its signal, so only the deadline ends the call.
    await assert.rejects(pending, isTimeout)
  })

  it('rejects with the deadline, not with the store\'s "aborted", when the store honours the signal', async () => {
    const store = scripted({
      head: (_key, opts) => new Promise((_, reject) => opts?.signal?.addEventListener('abort', () => reject(new UpstreamError('scripted', 'aborted', 'aborted')))),
    })
    await assert.rejects(withDeadline(store, { timeoutMs: 50 }).head('k'), isTimeout)
  })

  it('a body that goes silent while it is read fails with kind timeout', async () => {
    let body!: Readable
    const store = scripted({
      get: async () => {
        body = new Readable({ read() {} })
        body.push(Buffer.from('abc'))
        return { meta: { ...meta, size: 100 }, body }
      },
    })
    const got = await withDeadline(store, { timeoutMs: 150 }).get('k')
    assert.ok(got)
    const started = performance.now()
    // The idle timer is unref'd (a socket keeps a real gateway alive): keep this test alive.
    const alive = setInterval(() => {}, 1000)
    await assert.rejects(got.body.toArray(), isTimeout).finally(() => clearInterval(alive))
    assert.ok(performance.now() - started < 600)
    assert.ok(body.destroyed, 'the store body is destroyed (its socket freed)')
  })

  describe('over an fs store', () => {
    let root: string
    let store: Store
    const data = randomBytes(4 * 1024 * 1024)
    before(async () => {
      root = await mkdtemp(path.join(tmpdir(), 'cachegate-decorators-'))
      store = createFsStore({ id: 'local', root })
      await store.put('big.bin', Readable.from([data]), { contentType: 'application/octet-stream' })
    })
    after(() => rm(root, { recursive: true, force: true }))

    it('a slow reader is not a silent store: a body read with long pauses completes', async () => {
      const got = await withDeadline(store, { timeoutMs: 100 }).get('big.bin')
      assert.ok(got)
      const chunks: Buffer[] = []
      let paused = 0
      for await (const chunk of got.body) {
        chunks.push(chunk as Buffer)
        if (paused++ < 2) await sleep(350)
      }
      assert.ok(Buffer.concat(chunks).equals(data))
    })

    it('a body nobody reads yet is not cut while its bytes wait', async () => {
      const got = await withDeadline(store, { timeoutMs: 100 }).get('big.bin', { range: { start: 0, end: 9 } })
      assert.ok(got)
      await sleep(350)
      assert.ok(Buffer.concat(await got.body.toArray()).equals(data.subarray(0, 10)))
    })
  })

  it('a PUT whose store stops taking the body fails with kind timeout, and the store is aborted', async () => {
    const store = scripted({
      async put(_key, body, opts) {
        store.signals.push(opts.signal!)
        for await (const _chunk of body) await new Promise(() => {}) // takes one chunk, then hangs
        return meta
      },
    })
    // The client keeps sending: what the store leaves unread waits on the store.
    const body = Readable.from(
      (async function* steady() {
        for (let i = 0; i < 50; i++) {
          yield randomBytes(1000)
          await sleep(10)
        }
      })(),
    )
    const started = performance.now()
    await assert.rejects(withDeadline(store, { timeoutMs: 100 }).put('k', body, { contentType: 'text/plain' }), isTimeout)
    assert.ok(performance.now() - started < 500)
    assert.ok(store.signals[0]?.aborted)
  })

  it('a PUT whose store never answers once the body is complete fails with kind timeout', async () => {
    const store = scripted({
      async put(_key, body) {
        await body.toArray()
        return new Promise<never>(() => {})
      },
    })
    await assert.rejects(withDeadline(store, { timeoutMs: 100 }).put('k', Readable.from([Buffer.from('abc')]), { contentType: 'text/plain' }), isTimeout)
  })

  it('a slow client is not a stalled store: a PUT whose body trickles for longer than the timeout succeeds', async () => {
    const store = scripted({
      async put(_key, body, opts) {
        const bytes = Buffer.concat(await body.toArray())
        return { size: bytes.length, contentType: opts.contentType, etag: '"x"' }
      },
    })
    const trickle = Readable.from(
      (async function* slow() {
        for (let i = 0; i < 4; i++) {
          yield Buffer.from('ab')
          await sleep(120)
        }
      })(),
    )
    const stored = await withDeadline(store, { timeoutMs: 100 }).put('k', trickle, { contentType: 'text/plain' })
    assert.equal(stored.size, 8)
  })

  it('refuses a timeout that is not a positive number, at creation', () => {
    assert.throws(() => withDeadline(scripted(), { timeoutMs: 0 }), TypeError)
    assert.throws(() => withDeadline(scripted(), { timeoutMs: Number.NaN }), TypeError)
  })
})

describe('withMetrics', () => {
  it('counts each call under the op names the object service uses: head, get, get-page, put, with failure kinds', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'cachegate-metrics-'))
    try {
      const telemetry = new Telemetry()
      const store = withMetrics(createFsStore({ id: 'local', root }), telemetry)
      await store.put('a.txt', Readable.from([Buffer.from('abc')]), { contentType: 'text/plain' })
      assert.equal(await store.head('missing.txt'), null)
      const got = await store.get('a.txt')
      got?.body.resume()
      const page = await store.get('a.txt', { range: { start: 0, end: 1 }, op: 'get-page' })
      page?.body.resume()
      const failing = withMetrics(withDeadline(scripted(), { timeoutMs: 20 }), telemetry)
      await assert.rejects(failing.head('k'), isTimeout)
      const text = await telemetry.registry.metrics()
      for (const op of ['put', 'head', 'get', 'get-page']) {
        assert.ok(text.includes(`cachegate_upstream_requests_total{store="local",op="${op}",outcome="ok"} 1`), `${op}:\n${text}`)
      }
      assert.ok(text.includes('cachegate_upstream_requests_total{store="scripted",op="head",outcome="error"} 1'), text)
      assert.ok(text.includes('cachegate_upstream_errors_total{store="scripted",kind="timeout"} 1'), text)
      assert.equal(store.type, 'fs')
      assert.equal(failing.type, 'scripted')
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})
