/**
 * Fallback stores without emulators: the breaker and ranking on an injected clock, and the
 * start-up checks of `stores.<id>.fallback`.
 */
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import { ConfigError, configFromFlatEnv, validateConfig } from '../src/config/load.ts'
import { UpstreamError, type UpstreamErrorKind } from '../src/errors.ts'
import { CircuitBreaker } from '../src/stores/breaker.ts'
import { StoreHealth } from '../src/stores/store-health.ts'
import type { ObjectMeta, Store } from '../src/stores/types.ts'
import { withFallback } from '../src/stores/with-fallback.ts'

function clock() {
  let t = 1_000
  return { now: () => t, advance: (ms: number) => void (t += ms) }
}

/** A store whose next answers are scripted: an object, null, or an error kind. */
function scripted(id: string) {
  const calls: string[] = []
  let next: 'ok' | 'missing' | UpstreamErrorKind = 'ok'
  const meta: ObjectMeta = { size: 2, contentType: 'text/plain', etag: `"${id}"` }
  const answer = async () => {
    if (next === 'ok') return meta
    if (next === 'missing') return null
    throw new UpstreamError(id, next, `${id} failed: ${next}`)
  }
  const store: Store = {
    id,
    type: 'fake',
    head: async (key) => (calls.push(`head ${key}`), answer()),
    get: (async (key: string) => {
      calls.push(`get ${key}`)
      const m = await answer()
      return m && { meta: m, body: Readable.from([Buffer.from(id)]) }
    }) as Store['get'],
    put: async (key) => (calls.push(`put ${key}`), meta),
  }
  return { store, calls, set: (answer: typeof next) => void (next = answer) }
}

describe('withFallback: one read, one store', () => {
  it('a GET that names the store which answered for the version asks that store first', async () => {
    const a = scripted('media')
    const b = scripted('media-eu')
    const store = withFallback({ store: a.store, health: new StoreHealth('media') }, [{ store: b.store, health: new StoreHealth('media-eu') }])
    const got = await store.get('k', { prefer: 'media-eu' })
    assert.equal(got?.meta.servedBy, 'media-eu')
    assert.deepEqual(a.calls, [], 'the top-ranked primary was not asked')
    assert.equal((await store.get('k', { prefer: 'media' }))?.meta.servedBy, undefined)
  })

  it('a body that fails mid-read counts against its store: five in a row open its breaker', async () => {
    const failing: Store = {
      id: 'media',
      type: 'fake',
      head: async () => null,
      get: (async () => ({
        meta: { size: 2, contentType: 'text/plain', etag: '"m"' },
        body: new Readable({
          read() {
            this.destroy(new Error('connection reset mid-body'))
          },
        }),
      })) as Store['get'],
      put: async () => ({ size: 0, contentType: 'text/plain' }),
    }
    const health = new StoreHealth('media')
    const store = withFallback({ store: failing, health }, [{ store: scripted('media-eu').store, health: new StoreHealth('media-eu') }])
    for (let i = 0; i < 5; i++) {
      const got = await store.get('k', { prefer: 'media' })
      assert.equal(got?.meta.servedBy, undefined)
      await assert.rejects(got!.body.toArray(), /reset mid-body/)
    }
    assert.equal(health.breaker.state, 'open')
  })
})

describe('CircuitBreaker', () => {
  it('opens after 5 consecutive failures, lets one probe through after the cooldown, closes on its success', () => {
    const c = clock()
    const b = new CircuitBreaker({ now: c.now, cooldownMs: 30_000 })
    for (let i = 0; i < 4; i++) b.failure()
    assert.equal(b.state, 'closed')
    b.success()
    for (let i = 0; i < 4; i++) b.failure()
    assert.equal(b.state, 'closed', 'a success resets the count: failures must be consecutive')
    b.failure()
    assert.equal(b.state, 'open')
    assert.equal(b.tryAcquire(), false)
    c.advance(29_999)
    assert.equal(b.tryAcquire(), false)
    c.advance(1)
    assert.equal(b.tryAcquire(), true, 'the probe')
    assert.equal(b.state, 'half-open')
    assert.equal(b.tryAcquire(), false, 'only one probe')
    b.failure()
    assert.equal(b.state, 'open', 'a failed probe opens it again')
    c.advance(30_000)
    assert.equal(b.tryAcquire(), true)
    b.neutral()
    assert.equal(b.tryAcquire(), true, 'a probe that told nothing is handed to the next caller')
    b.success()
    assert.equal(b.state, 'closed')
  })
})

describe('withFallback', () => {
  function group() {
    const c = clock()
    const a = scripted('media')
    const b = scripted('media-eu')
    const health = { a: new StoreHealth('media', { now: c.now }), b: new StoreHealth('media-eu', { now: c.now }) }
    const store = withFallback({ store: a.store, health: health.a }, [{ store: b.store, health: health.b }])
    return { c, a, b, health, store }
  }

  it('keeps the bucket id; reads the primary first; a fallback answer names its store; writes go to the primary only', async () => {
    const { a, b, store } = group()
    assert.equal(store.id, 'media')
    assert.equal((await store.head('k'))?.servedBy, undefined)
    assert.deepEqual(b.calls, [])
    a.set('connect')
    assert.equal((await store.head('k'))?.servedBy, 'media-eu')
    const got = await store.get('k')
    assert.equal(got?.meta.servedBy, 'media-eu')
    await store.put('k', Readable.from([]), { contentType: 'text/plain' })
    assert.deepEqual(b.calls, ['head k', 'get k'])
    assert.ok(a.calls.includes('put k'))
  })

  it('not found on one store is asked of the next; null only when every store says so; failures win over null', async () => {
    const { a, b, store } = group()
    a.set('missing')
    assert.equal((await store.head('k'))?.servedBy, 'media-eu')
    b.set('missing')
    assert.equal(await store.head('k'), null)
    a.set('server')
    await assert.rejects(store.head('k'), { name: 'UpstreamError', kind: 'server' })
    a.set('connect')
    b.set('auth')
    await assert.rejects(store.head('k'), { kind: 'auth' }, 'the most telling failure')
  })

  it('after 5 counted failures the primary is skipped until the probe; 4xx and auth do not count', async () => {
    const { c, a, store, health } = group()
    a.set('auth')
    for (let i = 0; i < 10; i++) await store.head('k')
    assert.equal(health.a.breaker.state, 'closed')
    a.set('timeout')
    // One failure already ranks the primary behind the fallback (its error rate); a burst of
    // concurrent reads all ranked it first, and their failures open its breaker.
    await Promise.all(Array.from({ length: 8 }, () => store.head('k')))
    assert.equal(health.a.breaker.state, 'open')
    a.calls.length = 0
    for (let i = 0; i < 20; i++) assert.equal((await store.head('k'))?.servedBy, 'media-eu')
    assert.deepEqual(a.calls, [], 'no request while open')
    a.set('ok')
    c.advance(30_000)
    // Its error rate ranks it behind the fallback, but a store due a probe is asked first.
    assert.equal((await store.head('k'))?.servedBy, undefined, 'the probe succeeds')
    assert.equal(health.a.breaker.state, 'closed')
    assert.deepEqual(a.calls, ['head k'])
    assert.equal((await store.head('k'))?.servedBy, 'media-eu', 'still ranked behind while its failures are recent')
    c.advance(120_000)
    assert.equal((await store.head('k'))?.servedBy, undefined, 'first again once they have faded')
  })

  it('every store open: they are still tried, as a last resort', async () => {
    const { a, b, store, health } = group()
    a.set('connect')
    b.set('connect')
    for (let i = 0; i < 5; i++) await assert.rejects(store.head('k'))
    assert.equal(health.a.breaker.state, 'open')
    assert.equal(health.b.breaker.state, 'open')
    b.set('ok')
    assert.equal((await store.head('k'))?.servedBy, 'media-eu')
    assert.equal(health.b.breaker.state, 'closed')
  })

  it('ranks by position, decaying error rate and mean latency', () => {
    const c = clock()
    const h = new StoreHealth('s', { now: c.now, halfLifeMs: 10_000 })
    assert.equal(h.score(0), 0)
    assert.equal(h.score(1), 2000)
    h.ok(50) // 50 ms = 50,000 µs → 500
    assert.equal(h.score(0), 500)
    h.failed(true)
    assert.equal(h.errorRate, 0.5)
    assert.equal(h.score(0), 50_500)
    h.failed(false)
    assert.equal(h.errorRate, 0.5, 'a failure that is not the store’s is not counted')
    c.advance(10_000)
    h.ok(50)
    // The two old calls weigh half: 0.5 errors over 2 calls.
    assert.ok(Math.abs(h.errorRate - 0.25) < 1e-9, String(h.errorRate))
    assert.equal(h.snapshot().served, 2)
  })
})

describe('stores.<id>.fallback', () => {
  const base = { auth: { bearer_token: 'x'.repeat(16) } }
  const fs = (fallback?: string[]) => ({ type: 'fs', root: '/tmp', ...(fallback && { fallback }) })

  it('accepts fallbacks of any type, and no fallback at all', () => {
    const config = validateConfig({
      ...base,
      stores: { media: { type: 's3', bucket: 'media', fallback: ['media-eu', 'local'] }, 'media-eu': { type: 'azure', container: 'media', connection_string: 'x' }, local: fs() },
    })
    assert.deepEqual(config.stores.media?.fallback, ['media-eu', 'local'])
    assert.equal(config.stores.local?.fallback, undefined)
  })

  it('a flat environment variable holds a comma-separated list', () => {
    assert.deepEqual(configFromFlatEnv({ CACHEGATE__STORES__media__FALLBACK: 'media-eu, local' }), { stores: { media: { fallback: ['media-eu', 'local'] } } })
  })

  it('unknown store, the store itself and cycles: start-up fails listing every problem', () => {
    const error = (() => {
      try {
        validateConfig({ ...base, stores: { a: fs(['b', 'nope']), b: fs(['a']), c: fs(['c']), d: fs(['e']), e: fs(['f']), f: fs(['d']) } })
      } catch (error) {
        return error
      }
    })()
    assert.ok(error instanceof ConfigError, String(error))
    const text = error.problems.join('\n')
    assert.match(text, /stores\.a\.fallback\.1: unknown store "nope"/)
    assert.match(text, /stores\.c\.fallback\.0: store "c" cannot fall back to itself/)
    assert.match(text, /fallback cycle: a → b → a/)
    assert.match(text, /fallback cycle: d → e → f → d/)
    assert.equal(text.match(/fallback cycle/g)?.length, 2, 'each cycle once')
  })

  // The timeout is a guard against a walk that never ends, not a performance figure.
  it('a store listed twice is refused; 60 stores that each list every later one are checked', { timeout: 30_000 }, () => {
    assert.throws(() => validateConfig({ ...base, stores: { a: fs(['b', 'b']), b: fs([]) } }), (error: unknown) => {
      assert.ok(error instanceof ConfigError)
      assert.match(error.problems.join('\n'), /stores\.a\.fallback\.1: store "b" is listed twice/)
      return true
    })
    // A walk of every path is exponential here (2^59 paths); a visit of each store once is not.
    const ids = Array.from({ length: 60 }, (_, i) => `s${i}`)
    const stores = Object.fromEntries(ids.map((id, i) => [id, fs(ids.slice(i + 1))]))
    assert.equal(Object.keys(validateConfig({ ...base, stores }).stores).length, 60)
  })
})
