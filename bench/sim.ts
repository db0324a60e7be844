/**
 * Eviction simulator: replays synthetic request traces against S3FifoCache and an LRU
 * (`lru-cache` with `maxSize`) of the same byte budget, with no HTTP and a simulated backend.
 * The workloads are the scenarios of the S3 Cache project's simulator. Deterministic for a
 * seed: `npm run sim -- --seed 7` (default 42).
 *
 * Every trace starts with a cold cache and every request counts (compulsory misses included).
 * A miss is filled at once with the object's full size. Latency is simulated, not measured:
 * a hit costs HIT_MS, a miss the backend's latency plus size / bandwidth.
 */
import { LRUCache } from 'lru-cache'
import { S3FifoCache } from '../src/cache/s3fifo.ts'
import { prng } from '../test/helpers/prng.ts'

const HIT_MS = 0.05
const KB = 1000
const MB = 1000 * KB

interface Backend {
  latencyMs: number
  bytesPerSec: number
}
const DEFAULT_BACKEND: Backend = { latencyMs: 5, bytesPerSec: 100 * MB }
const SLOW_BACKEND: Backend = { latencyMs: 50, bytesPerSec: 10 * MB }


/** Zipf over ranks 0..n-1 (rank 0 most popular), by inverse CDF and binary search. */
function zipf(n: number, s: number, rand: () => number): () => number {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let r = 0; r < n; r++) cdf[r] = sum += 1 / (r + 1) ** s
  return () => {
    const u = rand() * sum
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((cdf[mid] ?? 0) < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** An object's size is a fixed function of its id and the seed: hash to [0, 1), then scale. */
function hash01(id: number, seed: number): number {
  let h = Math.imul(id ^ Math.imul(seed, 0x9e3779b1), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296
}
type SizeOf = (id: number) => number
const logUniform = (lo: number, hi: number, seed: number): SizeOf => (id) =>
  Math.round(lo * (hi / lo) ** hash01(id, seed))
const uniform = (lo: number, hi: number, seed: number): SizeOf => (id) =>
  Math.round(lo + (hi - lo) * hash01(id, seed))

function bytesOf(ids: number, sizeOf: SizeOf): number {
  let total = 0
  for (let id = 0; id < ids; id++) total += sizeOf(id)
  return total
}

interface Trace {
  keys: Int32Array
  sizes: Int32Array
}
function trace(n: number, sizeOf: SizeOf, next: (i: number) => number): Trace {
  const keys = new Int32Array(n)
  const sizes = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const id = next(i)
    keys[i] = id
    sizes[i] = sizeOf(id)
  }
  return { keys, sizes }
}

interface Workload {
  name: string
  params: string
  budget: number
  backend: Backend
  trace: Trace
}

/** Objects of 1–64 KB, log-uniform (mean ≈ 15 KB), unless a workload says otherwise. */
const SMALL_OBJECTS = { lo: 1 * KB, hi: 64 * KB }

/**
 * Popularity skew of the hot sets in the two mixed workloads. Breslau et al. (INFOCOM 1999)
 * measured zipf α between 0.64 and 0.83 on web proxy traces; 0.8 sits in that range. The
 * sensitivity table below shows the same workloads at 0.6 and 1.0.
 */
const HOT_SKEW = 0.8

/**
 * 70% of requests go to a zipf-popular hot set whose bytes equal the budget; 30% are keys
 * asked for once and never again (a one-off export, crawler hits, ...).
 */
function oneHitWonders(s: number, seed: number): Workload {
  const rand = prng(seed + 1)
  const sizes = logUniform(SMALL_OBJECTS.lo, SMALL_OBJECTS.hi, seed)
  const hot = 20_000
  const sample = zipf(hot, s, rand)
  let fresh = hot
  return {
    name: 'one-hit wonders 30%',
    params: `70% zipf s=${s.toFixed(1)} over ${hot / 1000}k objects, 30% never-repeated keys, all 1–64 KB; cache = the hot set's bytes; 600k requests`,
    budget: bytesOf(hot, sizes),
    backend: DEFAULT_BACKEND,
    trace: trace(600_000, sizes, () => (rand() < 0.3 ? fresh++ : sample())),
  }
}

/**
 * A zipf hot set whose bytes equal the budget; after every 100k requests, a scan of 20k objects
 * never read before (a backup, a re-index, a crawler), as many bytes as the cache: enough to
 * flush an LRU, as a real full-bucket scan would be.
 */
function scanMixed(s: number, seed: number): Workload {
  const rand = prng(seed + 2)
  const sizes = logUniform(SMALL_OBJECTS.lo, SMALL_OBJECTS.hi, seed)
  const hot = 20_000
  const scanLength = 20_000
  const period = 100_000
  const sample = zipf(hot, s, rand)
  let fresh = hot
  return {
    name: 'zipf + periodic scans',
    params: `zipf s=${s.toFixed(1)} over ${hot / 1000}k objects, after every ${period / 1000}k requests a scan of ${scanLength / 1000}k new objects; all 1–64 KB; cache = the hot set's bytes; 720k requests`,
    budget: bytesOf(hot, sizes),
    backend: DEFAULT_BACKEND,
    trace: trace(6 * (period + scanLength), sizes, (i) => (i % (period + scanLength) >= period ? fresh++ : sample())),
  }
}

function workloads(seed: number): Workload[] {
  const rand = prng(seed)
  const sizes = logUniform(SMALL_OBJECTS.lo, SMALL_OBJECTS.hi, seed)
  const list: Workload[] = []

  const zipfWorkload = (name: string, s: number, backend: Backend, extra = ''): void => {
    // 100k objects (≈1.5 GB); the cache holds 10% of the catalogue's bytes; 1M requests.
    const objects = 100_000
    const sample = zipf(objects, s, rand)
    list.push({
      name,
      params: `zipf s=${s.toFixed(1)} over ${objects / 1000}k objects of 1–64 KB, cache = 10% of their bytes, 1M requests${extra}`,
      budget: Math.round(bytesOf(objects, sizes) * 0.1),
      backend,
      trace: trace(1_000_000, sizes, sample),
    })
  }
  zipfWorkload('zipf s=1.0', 1.0, DEFAULT_BACKEND)
  zipfWorkload('zipf s=1.5', 1.5, DEFAULT_BACKEND)

  {
    // A batch job reading 10k objects in order, five passes; the cache holds half of them.
    const objects = 10_000
    list.push({
      name: 'sequential scan',
      params: `${objects / 1000}k objects of 1–64 KB read in order, 5 passes, cache = 50% of their bytes`,
      budget: Math.round(bytesOf(objects, sizes) * 0.5),
      backend: DEFAULT_BACKEND,
      trace: trace(objects * 5, sizes, (i) => i % objects),
    })
  }
  list.push(oneHitWonders(HOT_SKEW, seed))
  {
    // The S3 Cache simulator's tiny-cache case: about 100 entries' worth of bytes.
    const objects = 10_000
    const small = uniform(5 * KB, 15 * KB, seed)
    list.push({
      name: 'tiny cache',
      params: `zipf s=1.0 over ${objects / 1000}k objects of 5–15 KB, cache = 1 MB (≈100 entries), 200k requests`,
      budget: 1 * MB,
      backend: DEFAULT_BACKEND,
      trace: trace(200_000, small, zipf(objects, 1.0, rand)),
    })
  }
  {
    // Objects of 50–200 KB (uniform), 1k of them, against a 10 MB budget: ~80 fit.
    const objects = 1_000
    const large = uniform(50 * KB, 200 * KB, seed)
    list.push({
      name: 'large objects',
      params: `zipf s=1.0 over ${objects / 1000}k objects of 50–200 KB (≈125 MB), cache = 10 MB, 200k requests`,
      budget: 10 * MB,
      backend: DEFAULT_BACKEND,
      trace: trace(200_000, large, zipf(objects, 1.0, rand)),
    })
  }
  {
    // No popularity at all: every policy should hit ≈ the cached share (10%).
    const objects = 10_000
    list.push({
      name: 'uniform',
      params: `uniform over ${objects / 1000}k objects of 1–64 KB, cache = 10% of their bytes, 200k requests`,
      budget: Math.round(bytesOf(objects, sizes) * 0.1),
      backend: DEFAULT_BACKEND,
      trace: trace(200_000, sizes, () => Math.floor(rand() * objects)),
    })
  }
  // The zipf s=1.0 workload (a fresh trace) behind a far-away backend: 50 ms + 10 MB/s.
  zipfWorkload('high-latency backend', 1.0, SLOW_BACKEND, '; backend 50 ms + 10 MB/s')
  list.push(scanMixed(HOT_SKEW, seed))
  return list
}

interface SimCache {
  get(key: number): number | undefined
  set(key: number, size: number): void
}

interface Result {
  hit: number
  byteHit: number
  p50: number
  p99: number
}

function replay(cache: SimCache, { keys, sizes }: Trace, backend: Backend): Result {
  const latency = new Float64Array(keys.length)
  let hits = 0
  let hitBytes = 0
  let bytes = 0
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] ?? 0
    const size = sizes[i] ?? 0
    bytes += size
    if (cache.get(key) !== undefined) {
      hits++
      hitBytes += size
      latency[i] = HIT_MS
    } else {
      cache.set(key, size)
      latency[i] = backend.latencyMs + (size / backend.bytesPerSec) * 1000
    }
  }
  latency.sort()
  const at = (q: number): number => latency[Math.min(latency.length - 1, Math.floor(q * latency.length))] ?? 0
  return { hit: (100 * hits) / keys.length, byteHit: (100 * hitBytes) / bytes, p50: at(0.5), p99: at(0.99) }
}

function s3fifo(maxBytes: number): SimCache {
  const cache = new S3FifoCache<number, number>({ maxBytes })
  return { get: (key) => cache.get(key), set: (key, size) => void cache.set(key, size, size) }
}

function lru(maxBytes: number): SimCache {
  const cache = new LRUCache<number, number>({ maxSize: maxBytes, sizeCalculation: (size) => size })
  return { get: (key) => cache.get(key), set: (key, size) => void cache.set(key, size) }
}

function parseSeed(argv: string[]): number {
  const i = argv.indexOf('--seed')
  if (i === -1) return 42
  const seed = Number(argv[i + 1])
  if (!Number.isSafeInteger(seed)) {
    console.error('usage: node bench/sim.ts [--seed N]')
    process.exit(2)
  }
  return seed
}

/** Hit ratio of an unbounded cache: every request but each key's first. */
function ceiling({ keys }: Trace): number {
  const seen = new Set<number>()
  for (const key of keys) seen.add(key)
  return (100 * (keys.length - seen.size)) / keys.length
}

const seed = parseSeed(process.argv.slice(2))
const started = performance.now()
const ms = (x: number): string => (x < 1 ? x.toFixed(2) : x.toFixed(1))
const pct = (x: number): string => x.toFixed(1)
const signed = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`

interface Compared {
  s3: Result
  lru: Result
  delta: number
  ceiling: number
}
function compare(w: Workload): Compared {
  const s3 = replay(s3fifo(w.budget), w.trace, w.backend)
  const lruResult = replay(lru(w.budget), w.trace, w.backend)
  return { s3, lru: lruResult, delta: s3.hit - lruResult.hit, ceiling: ceiling(w.trace) }
}

console.log(`S3-FIFO vs LRU at equal byte budgets, seed ${seed}\n`)
console.log('| workload | S3-FIFO hit% | LRU hit% | Δ points | byte hit% S3-FIFO / LRU | p50 / p99 ms S3-FIFO | p50 / p99 ms LRU | unbounded hit% |')
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
const notes: string[] = []
const deltas = new Map<string, number>()
for (const w of workloads(seed)) {
  const { s3, lru: l, delta, ceiling: max } = compare(w)
  deltas.set(w.name, delta)
  console.log(
    `| ${w.name} | ${pct(s3.hit)} | ${pct(l.hit)} | ${signed(delta)} | ${pct(s3.byteHit)} / ${pct(l.byteHit)} | ` +
      `${ms(s3.p50)} / ${ms(s3.p99)} | ${ms(l.p50)} / ${ms(l.p99)} | ${pct(max)} |`,
  )
  notes.push(`- **${w.name}**: ${w.params} (budget ${(w.budget / MB).toFixed(1)} MB)`)
}
console.log(`\nWorkloads (hit = ${HIT_MS} ms; miss = backend latency + size / bandwidth, 5 ms + 100 MB/s unless noted;`)
console.log('cold start, every request counted; "unbounded hit%" = an infinite cache, i.e. only first requests miss):')
for (const note of notes) console.log(note)

console.log('\nSensitivity of the mixed workloads to the hot set\'s skew (hit%, S3-FIFO / LRU, Δ, unbounded):\n')
console.log('| hot-set zipf s | one-hit wonders 30% | zipf + periodic scans |')
console.log('| ---: | ---: | ---: |')
for (const s of [0.6, 0.8, 1.0]) {
  const cells = [oneHitWonders(s, seed), scanMixed(s, seed)].map((w) => {
    const c = compare(w)
    return `${pct(c.s3.hit)} / ${pct(c.lru.hit)}, ${signed(c.delta)}, ${pct(c.ceiling)}`
  })
  console.log(`| ${s.toFixed(1)} | ${cells.join(' | ')} |`)
}

const worst = Math.min(...deltas.values())
const scan = deltas.get('zipf + periodic scans') ?? 0
const oneHit = deltas.get('one-hit wonders 30%') ?? 0
const met = worst >= -1 && scan >= 10 && oneHit >= 10
console.log(
  `\nTargets (never worse than LRU by more than 1 point; ≥ 10 points better on scan-mixed and one-hit-wonder): ` +
    `${met ? 'MET' : 'MISSED'}: worst Δ ${signed(worst)}, scan-mixed Δ ${signed(scan)}, one-hit Δ ${signed(oneHit)}` +
    ` (${((performance.now() - started) / 1000).toFixed(1)} s)`,
)
