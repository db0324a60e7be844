/**
 * The hedging estimate and budget on their own, with an injected clock (no sleeping), and the
 * `upstream.hedge_*` settings.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, it } from 'node:test'
import { parse as parseYaml } from 'yaml'
import { ConfigError, validateConfig } from '../src/config/load.ts'
import { HedgeBudget } from '../src/stores/hedge-budget.ts'
import { LatencySketch } from '../src/stores/latency-sketch.ts'
import { ROOT } from './helpers/gateway.ts'
import { prng } from './helpers/prng.ts'

/** True value `exact` reported as `got`: never below it, at most one bucket (5%) above. */
function withinResolution(got: number | undefined, exact: number): void {
  assert.ok(got !== undefined)
  assert.ok(got >= exact * (1 - 1e-9) && got <= exact * (1 + LatencySketch.RESOLUTION) + 1e-9, `${got} vs exact ${exact}`)
}

describe('LatencySketch', () => {
  it('is empty until the first sample', () => {
    const sketch = new LatencySketch()
    assert.equal(sketch.quantile(0.99), undefined)
    assert.equal(sketch.samples, 0)
  })

  it('reports quantiles within the bucket resolution (without decay mattering: a tiny alpha)', () => {
    const random = prng(7)
    const values = Array.from({ length: 20_000 }, () => Math.exp(random() * Math.log(50_000)) * 0.5) // 0.5 ms – 25 s, log-uniform
    for (const q of [0.5, 0.9, 0.99, 0.999]) {
      const sketch = new LatencySketch({ alpha: 1e-9, refreshMs: 0 })
      for (const v of values) sketch.record(v)
      const sorted = [...values].sort((a, b) => a - b)
      withinResolution(sketch.quantile(q), sorted[Math.ceil(q * sorted.length) - 1]!)
    }
  })

  it('clamps values outside 0.1 ms – 60 s to the end buckets', () => {
    const sketch = new LatencySketch({ refreshMs: 0 })
    sketch.record(0.001)
    assert.equal(sketch.quantile(0.5), 0.1)
    for (let i = 0; i < 1000; i++) sketch.record(600_000)
    assert.equal(sketch.quantile(0.5), 60_000)
  })

  it('old samples fade: after a shift to slower answers the quantile follows within a few hundred samples', () => {
    const sketch = new LatencySketch({ refreshMs: 0 })
    for (let i = 0; i < 10_000; i++) sketch.record(10)
    withinResolution(sketch.quantile(0.99), 10)
    for (let i = 0; i < 30; i++) sketch.record(200)
    // (1 - 0.015)^30 ≈ 0.64 of the weight is still on 10 ms: the median has not moved, p99 has.
    withinResolution(sketch.quantile(0.5), 10)
    withinResolution(sketch.quantile(0.99), 200)
    for (let i = 0; i < 320; i++) sketch.record(200)
    // (1 - 0.015)^350 ≈ 0.5%: 10 000 old samples weigh less than 1% together.
    withinResolution(sketch.quantile(0.01), 200)
  })

  it('keeps its proportions across the rescaling of the growing sample weight', () => {
    const sketch = new LatencySketch({ refreshMs: 0 })
    for (let i = 0; i < 100_000; i++) sketch.record(i % 100 === 0 ? 1000 : 5)
    withinResolution(sketch.quantile(0.5), 5)
    const p999 = sketch.quantile(0.999)
    assert.ok(p999 !== undefined && Number.isFinite(p999))
  })

  it('recomputes a quantile at most once per refreshMs of its clock', () => {
    let clock = 0
    const sketch = new LatencySketch({ now: () => clock })
    for (let i = 0; i < 200; i++) sketch.record(10)
    withinResolution(sketch.quantile(0.99), 10)
    for (let i = 0; i < 500; i++) sketch.record(100)
    clock = 999
    withinResolution(sketch.quantile(0.99), 10)
    clock = 1000
    withinResolution(sketch.quantile(0.99), 100)
  })
})

describe('HedgeBudget', () => {
  it('allows at most ratio × GETs of the sliding minute, and forgets GETs older than a minute', () => {
    let clock = 0
    const budget = new HedgeBudget(0.1, () => clock)
    for (let i = 0; i < 9; i++) budget.noteGet()
    assert.equal(budget.tryHedge(), false, '9 GETs × 0.1 < 1')
    budget.noteGet()
    assert.equal(budget.tryHedge(), true)
    assert.equal(budget.tryHedge(), false)
    clock = 30_000
    for (let i = 0; i < 10; i++) budget.noteGet()
    assert.equal(budget.tryHedge(), true, '20 GETs in the minute: 2 hedges')
    assert.equal(budget.tryHedge(), false)
    clock = 61_000
    // The first 10 GETs and their hedge are out of the window; 10 GETs and 1 hedge remain.
    assert.equal(budget.tryHedge(), false)
    for (let i = 0; i < 10; i++) budget.noteGet()
    assert.equal(budget.tryHedge(), true)
  })

  it('ratio 0 never hedges; a ratio outside [0, 1] is refused', () => {
    const budget = new HedgeBudget(0)
    for (let i = 0; i < 1000; i++) budget.noteGet()
    assert.equal(budget.tryHedge(), false)
    assert.throws(() => new HedgeBudget(-0.1), TypeError)
    assert.throws(() => new HedgeBudget(1.5), TypeError)
  })
})

describe('upstream.hedge_* config', () => {
  const base = { auth: { bearer_token: 'test-bearer-token-0123456789' }, stores: { local: { type: 'fs', root: '/tmp' } } }

  it('has the defaults documented (commented out) in config.example.yaml', async () => {
    const text = await readFile(path.join(ROOT, 'config.example.yaml'), 'utf8')
    const block = text.slice(text.indexOf('# upstream:')).split('\n\n')[0]!.replace(/^# ?/gm, '')
    const documented = validateConfig({ ...base, ...parseYaml(block) }).upstream
    assert.deepEqual(documented, validateConfig(base).upstream)
    assert.deepEqual(documented, { timeout_seconds: 30, hedge_quantile: 0.99, hedge_min_samples: 100, hedge_max_ratio: 0.05 })
  })

  it('refuses a quantile outside [0, 1), a ratio outside [0, 1] and fractional or zero min samples, listing each', () => {
    for (const [upstream, keys] of [
      [{ hedge_quantile: 1, hedge_max_ratio: -0.1, hedge_min_samples: 1.5 }, ['hedge_quantile', 'hedge_max_ratio', 'hedge_min_samples']],
      [{ hedge_quantile: -0.5, hedge_max_ratio: 2, hedge_min_samples: 0 }, ['hedge_quantile', 'hedge_max_ratio', 'hedge_min_samples']],
    ] as const) {
      assert.throws(
        () => validateConfig({ ...base, upstream }),
        (error: unknown) => error instanceof ConfigError && keys.every((key) => error.problems.some((p) => p.includes(key))),
      )
    }
    assert.equal(validateConfig({ ...base, upstream: { hedge_quantile: 0 } }).upstream.hedge_quantile, 0)
  })
})
