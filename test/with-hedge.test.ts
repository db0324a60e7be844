/**
 * `withHedge` on its own, over scripted stores (as `store-decorators.test.ts`): who wins a
 * race, what a failed attempt means, and that the loser's signal is aborted.
 */
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import { UpstreamError } from '../src/errors.ts'
import type { GetOptions, GetResult, ObjectMeta, Store } from '../src/stores/types.ts'
import { HedgeLostError, withHedge } from '../src/stores/with-hedge.ts'

const meta: ObjectMeta = { size: 3, contentType: 'text/plain', etag: '"e"' }
type Script = (call: number, signal: AbortSignal) => Promise<GetResult | null>

/** A store whose `n`th GET (from 0) runs `script(n, signal)`; the first `warm` GETs answer at once. */
function scripted(script: Script, warm = 3): Store & { signals: AbortSignal[] } {
  const signals: AbortSignal[] = []
  let calls = 0
  const never = () => new Promise<never>(() => {})
  return {
    type: 'scripted',
    id: 'scripted',
    signals,
    head: never,
    put: never,
    get: (_key: string, opts?: GetOptions) => {
      const n = calls++
      if (n < warm) return Promise.resolve({ meta, body: Readable.from([Buffer.from('abc')]) })
      signals.push(opts!.signal!)
      return script(n - warm, opts!.signal!)
    },
  } as Store & { signals: AbortSignal[] }
}

const answer = (text: string, ms: number) => new Promise<GetResult>((resolve) => setTimeout(() => resolve({ meta, body: Readable.from([Buffer.from(text)]) }), ms))
const failure = (ms: number) => new Promise<never>((_, reject) => setTimeout(() => reject(new UpstreamError('scripted', 'server', `failed after ${ms} ms`)), ms))
const body = async (got: GetResult | null) => (got ? Buffer.concat(await got.body.toArray()).toString() : null)

function hedged(store: Store, counts = { sent: 0, won: 0 }): Store {
  return withHedge(store, {
    quantile: 0.5,
    minSamples: 3,
    maxRatio: 1,
    telemetry: { hedgeSent: () => counts.sent++, hedgeWon: () => counts.won++, hedgeThreshold: () => {} },
  })
}

async function warmUp(store: Store): Promise<void> {
  for (let i = 0; i < 3; i++) await body(await store.get('k'))
}

describe('withHedge', () => {
  it('an attempt whose body fails before its first byte does not win: the other attempt is used', async () => {
    const failingBody = () =>
      new Promise<GetResult>((resolve) =>
        setTimeout(() => resolve({ meta, body: new Readable({ read() { this.destroy(new Error('reset before the first byte')) } }) }), 20),
      )
    const raw = scripted((call) => (call === 0 ? failingBody() : answer('hedge', 60)))
    const store = hedged(raw)
    await warmUp(store)
    assert.equal(await body(await store.get('k')), 'hedge')
  })

  it('the hedge wins a stalled GET; the stalled one is aborted with HedgeLostError', async () => {
    const counts = { sent: 0, won: 0 }
    const raw = scripted((call) => (call === 0 ? new Promise(() => {}) : answer('hedge', 5)))
    const store = hedged(raw, counts)
    await warmUp(store)
    assert.equal(await body(await store.get('k')), 'hedge')
    assert.deepEqual(counts, { sent: 1, won: 1 })
    assert.ok(raw.signals[0]!.aborted && raw.signals[0]!.reason instanceof HedgeLostError)
    assert.equal(raw.signals[1]!.aborted, false)
  })

  it('a 404 is an answer: it wins', async () => {
    const store = hedged(scripted((call) => (call === 0 ? new Promise(() => {}) : Promise.resolve(null))))
    await warmUp(store)
    assert.equal(await store.get('k'), null)
  })

  it('a first attempt that fails while the hedge is pending: the hedge answers', async () => {
    const store = hedged(scripted((call) => (call === 0 ? failure(30) : answer('hedge', 100))))
    await warmUp(store)
    assert.equal(await body(await store.get('k')), 'hedge')
  })

  it('a hedge that fails while the first attempt is pending: the first answers', async () => {
    const store = hedged(scripted((call) => (call === 0 ? answer('first', 100) : failure(1))))
    await warmUp(store)
    assert.equal(await body(await store.get('k')), 'first')
  })

  it('both fail: the first failure is thrown; a failure before the threshold sends no hedge', async () => {
    const counts = { sent: 0, won: 0 }
    const store = hedged(scripted((call) => failure(call === 0 ? 60 : call === 1 ? 10 : 0)), counts)
    await warmUp(store)
    await assert.rejects(store.get('k'), /failed after 10 ms/)
    assert.equal(counts.sent, 1)
    await assert.rejects(store.get('k'), /failed after 0 ms/)
    assert.equal(counts.sent, 1)
  })

  it("the caller's signal reaches every attempt", async () => {
    const raw = scripted(() => new Promise(() => {}))
    const store = hedged(raw)
    await warmUp(store)
    const controller = new AbortController()
    void store.get('k', { signal: controller.signal })
    await new Promise((resolve) => setTimeout(resolve, 50))
    controller.abort(new Error('client gone'))
    assert.equal(raw.signals.length, 2)
    assert.ok(raw.signals.every((signal) => signal.aborted))
  })

  it('quantile 0 returns the store itself; bad options throw at creation', () => {
    const raw = scripted(() => Promise.resolve(null))
    assert.equal(withHedge(raw, { quantile: 0, minSamples: 1, maxRatio: 0.05 }), raw)
    assert.throws(() => withHedge(raw, { quantile: 1, minSamples: 1, maxRatio: 0.05 }), TypeError)
    assert.throws(() => withHedge(raw, { quantile: 0.9, minSamples: 0, maxRatio: 0.05 }), TypeError)
    assert.throws(() => withHedge(raw, { quantile: 0.9, minSamples: 1, maxRatio: 2 }), TypeError)
  })
})
