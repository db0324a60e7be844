/**
 * The freshness keys in configuration: durations (`parseDuration`), their validation at
 * start-up, the per-store override and how the policies are resolved from them.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseDuration } from '../src/config/duration.ts'
import { ConfigError, configFromFlatEnv, validateConfig } from '../src/config/load.ts'
import { EXPIRED, FRESH, IMMUTABLE, STALE, policyOf, stalenessOf } from '../src/objects/freshness.ts'
import { NegativeCache } from '../src/objects/negative.ts'

const BASE = { auth: { bearer_token: 'a-bearer-token-long-enough' }, stores: { media: { type: 'fs', root: '/srv' } } }

function problems(raw: Record<string, unknown>): string[] {
  try {
    validateConfig({ ...BASE, ...raw })
  } catch (error) {
    assert.ok(error instanceof ConfigError)
    return error.problems
  }
  assert.fail('expected a ConfigError')
}

describe('parseDuration', () => {
  it('reads units and plain seconds', () => {
    assert.equal(parseDuration('30s'), 30_000)
    assert.equal(parseDuration('10m'), 600_000)
    assert.equal(parseDuration('1h'), 3_600_000)
    assert.equal(parseDuration('7d'), 7 * 86_400_000)
    assert.equal(parseDuration('250ms'), 250)
    assert.equal(parseDuration('1.5s'), 1500)
    assert.equal(parseDuration('45'), 45_000)
    assert.equal(parseDuration(45), 45_000)
    assert.equal(parseDuration('0'), 0)
    assert.equal(parseDuration(' 2M '), 120_000)
  })
  it('refuses what is not a duration', () => {
    for (const bad of ['', 's', '-5s', '1w', '10 minutes', '1e3', 'NaN', '1h30m', '9'.repeat(30)]) assert.equal(parseDuration(bad), undefined, bad)
    assert.equal(parseDuration(-1), undefined)
    assert.equal(parseDuration(Number.POSITIVE_INFINITY), undefined)
  })
})

describe('freshness config', () => {
  it('off unless configured: every store is immutable', () => {
    const config = validateConfig(BASE)
    assert.equal(policyOf(config.cache, config.stores.media!.cache), IMMUTABLE)
    assert.equal(config.cache.verify_sample_rate, 0)
    assert.equal(config.cache.verify_only, false)
  })

  it('global keys, overridden one by one per store', () => {
    const config = validateConfig({
      ...BASE,
      cache: { revalidate_after: '10m', max_stale: '1h', negative_ttl: 30 },
      stores: { media: { type: 'fs', root: '/srv', cache: { revalidate_after: '30s' } }, other: { type: 'fs', root: '/srv' } },
    })
    assert.deepEqual(policyOf(config.cache, config.stores.media!.cache), { revalidateAfter: 30_000, maxStale: 3_600_000, negativeTtl: 30_000 })
    assert.deepEqual(policyOf(config.cache, config.stores.other!.cache), { revalidateAfter: 600_000, maxStale: 3_600_000, negativeTtl: 30_000 })
    const negativeOnly = validateConfig({ ...BASE, cache: { negative_ttl: '5s' } })
    assert.deepEqual(policyOf(negativeOnly.cache), { revalidateAfter: Infinity, maxStale: Infinity, negativeTtl: 5000 })
  })

  it('a duration that does not parse fails start-up, naming the key', () => {
    assert.deepEqual(problems({ cache: { revalidate_after: '10 minutes' } }), ['cache.revalidate_after: not a duration (examples: 30s, 10m, 1h, 7d, or plain seconds)'])
    assert.match(problems({ cache: { max_stale: '-1s' } })[0]!, /^cache\.max_stale: not a duration/)
    assert.match(problems({ stores: { media: { type: 'fs', root: '/srv', cache: { negative_ttl: 'soon' } } } })[0]!, /^stores\.media\.cache\.negative_ttl: not a duration/)
    assert.match(problems({ stores: { media: { type: 'fs', root: '/srv', cache: { max_memory: '1GiB' } } } })[0]!, /unknown key "max_memory"/)
    assert.match(problems({ cache: { verify_sample_rate: 1.5 } })[0]!, /^cache\.verify_sample_rate/)
    assert.match(problems({ auth: { bearer_token: 'a-bearer-token-long-enough', admin_token_sha256: 'abc' } })[0]!, /^auth\.admin_token_sha256: .*64 hex digits/)
  })

  it('per-store keys from flat environment variables', () => {
    const flat = configFromFlatEnv({ CACHEGATE__STORES__media__CACHE__REVALIDATE_AFTER: '1m', CACHEGATE__CACHE__NEGATIVE_TTL: '10s' })
    assert.deepEqual(flat, { stores: { media: { cache: { revalidate_after: '1m' } } }, cache: { negative_ttl: '10s' } })
  })
})

describe('stalenessOf', () => {
  const policy = { revalidateAfter: 30_000, maxStale: 60_000, negativeTtl: 0 }
  it('fresh up to revalidate_after, stale up to max_stale past it, then expired', () => {
    assert.equal(stalenessOf(0, policy, 30_000), FRESH)
    assert.equal(stalenessOf(0, policy, 30_001), STALE)
    assert.equal(stalenessOf(0, policy, 90_000), STALE)
    assert.equal(stalenessOf(0, policy, 90_001), EXPIRED)
    assert.equal(stalenessOf(0, IMMUTABLE, Number.MAX_SAFE_INTEGER), FRESH)
    assert.equal(stalenessOf(0, { ...policy, maxStale: Infinity }, Number.MAX_SAFE_INTEGER), STALE)
  })
})

describe('NegativeCache', () => {
  it('remembers for the TTL, is bounded, and forgets by key and prefix', () => {
    let now = 0
    const negative = new NegativeCache({ max: 3, now: () => now })
    negative.remember('b\u0000x', 0)
    assert.equal(negative.has('b\u0000x'), false, 'TTL 0: off')
    negative.remember('b\u0000a', 1000)
    assert.equal(negative.has('b\u0000a'), true)
    now = 1000
    assert.equal(negative.has('b\u0000a'), false, 'expired')
    for (const k of ['1', '2', '3', '4']) negative.remember(`b\u0000p/${k}`, 1000)
    assert.equal(negative.size, 3)
    assert.equal(negative.has('b\u0000p/1'), false, 'the oldest went first')
    assert.equal(negative.forget('b\u0000p/2'), true)
    assert.equal(negative.forgetPrefix('b\u0000p/'), 2)
    assert.equal(negative.size, 0)
  })
})
