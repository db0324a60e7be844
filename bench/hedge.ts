/**
 * `npm run bench:hedge`: what hedged reads (issue 12 §1) do for the tail.
 *
 * s3rver behind the counting proxy (test/helpers/counting-proxy.ts), which delays every 50th
 * upstream GET (2%, deterministic) by 500 ms. Two gateway processes over it, hedging off
 * (`hedge_quantile: 0`) and on (the defaults: p99, 100 samples, 5% budget), each read the same
 * 2,000 distinct 64 KiB objects once (cold misses: each gateway has its own cache) at
 * concurrency 16, after a warm-up of 200 other objects (so the estimate has its 100 samples;
 * the same warm-up for both). Reports client latency p50 / p99 / p99.9 and the upstream GETs
 * each run cost. Writes the "hedge" section of bench/RESULTS.md.
 *
 *   npm run bench:hedge [-- --requests 2000 --concurrency 16 --quantile 0.99 --no-write]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { startCountingProxy } from '../test/helpers/counting-proxy.ts'
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY } from '../test/helpers/emulators.ts'
import { prng } from '../test/helpers/prng.ts'
import { timedGet } from './lib/http.ts'
import { KiB, s3Client } from './lib/objects.ts'
import { pinSelf, stopAll } from './lib/procs.ts'
import { RESULTS_PREAMBLE, count, fixed, loadAverage, machineLine, table, writeSection } from './lib/report.ts'
import { type GatewayServer, ROOT, startGateway, startS3rverProcess } from './lib/servers.ts'

const { values: flags } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    /** `upstream.hedge_quantile` of the hedging run (default: the gateway's default, 0.99). */
    quantile: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
})
const REQUESTS = Number(flags.requests)
const CONCURRENCY = Number(flags.concurrency)
const WARM_UP = 200
const SIZE = 64 * KiB
const SLOW_EVERY = 50
const SLOW_MS = 500
/** The whole run is cut off after this long. */
const BOUND_MS = 10 * 60_000
const BEARER = 'bench-bearer-token-0123456789abcdef'
const auth = { Authorization: `Bearer ${BEARER}` }
const log = (line: string) => process.stderr.write(`${line}\n`)

interface Run {
  label: string
  ms: number[]
  upstreamGets: number
  delayed: number
  hedges: { sent: number; won: number; threshold_ms: number | null } | undefined
  wallMs: number
}

/** Nearest-rank percentile. */
function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN
}

/** `keys` read once each by `CONCURRENCY` workers; every answer must be a whole 64 KiB miss. */
async function readAll(gw: GatewayServer, keys: readonly string[]): Promise<number[]> {
  const ms: number[] = []
  let next = 0
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!
      const got = await timedGet(`${gw.url}/bench/${key}`, auth)
      if (got.status !== 200 || got.bytes !== SIZE || !String(got.headers['x-cg-status']).startsWith('hit=0')) {
        throw new Error(`${gw.name} ${key}: status ${got.status}, ${got.bytes} bytes, X-CG-Status ${String(got.headers['x-cg-status'])}`)
      }
      ms.push(got.totalMs)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  return ms
}

async function main(): Promise<void> {
  pinSelf()
  const started = new Date()
  const loadAtStart = loadAverage()
  const bound = setTimeout(() => {
    log(`bench:hedge: not done after ${BOUND_MS / 60_000} min, giving up`)
    void stopAll().finally(() => process.exit(1))
  }, BOUND_MS)
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-hedge-'))
  const s3 = await startS3rverProcess()
  const proxy = await startCountingProxy(s3.url)
  const client = s3Client(s3.url)
  const runs: Run[] = []
  try {
    log(`hedge: uploading ${WARM_UP + REQUESTS} objects of 64 KiB`)
    const random = prng(12)
    const body = Buffer.alloc(SIZE)
    const keys = Array.from({ length: WARM_UP + REQUESTS }, (_, i) => `hedge/${i}`)
    let uploaded = 0
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (uploaded < keys.length) {
          const key = keys[uploaded++]!
          for (let i = 0; i < SIZE; i += 4) body.writeUInt32LE((random() * 2 ** 32) >>> 0, i)
          await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: Buffer.from(body), ContentType: 'application/octet-stream' }))
        }
      }),
    )
    const warmKeys = keys.slice(0, WARM_UP)
    const measuredKeys = keys.slice(WARM_UP)
    const store = { type: 's3', bucket: s3.bucket, endpoint: proxy.url, allow_http: true, access_key: S3RVER_ACCESS_KEY, secret_key: S3RVER_SECRET_KEY }
    const config = (upstream: Record<string, unknown>) => ({ listen: '127.0.0.1:0', auth: { bearer_token: BEARER }, log: { level: 'info' }, upstream, stores: { bench: store } })
    let delayed = 0
    proxy.configure({
      delayFor: ({ method, index }) => {
        if (method !== 'GET' || index % SLOW_EVERY !== SLOW_EVERY - 1) return 0
        delayed++
        return SLOW_MS
      },
    })
    const variants: [string, Record<string, unknown>][] = [
      ['hedging off (`hedge_quantile: 0`)', { hedge_quantile: 0 }],
      flags.quantile === undefined
        ? ['hedging on (defaults: p99, 100 samples, 5% budget)', {}]
        : [`hedging on (\`hedge_quantile: ${flags.quantile}\`, 100 samples, 5% budget)`, { hedge_quantile: Number(flags.quantile) }],
    ]
    for (const [label, upstream] of variants) {
      const gw = await startGateway(`gateway-${runs.length}`, path.join(dir, `gw-${runs.length}`), config(upstream))
      proxy.reset()
      await readAll(gw, warmKeys)
      proxy.reset()
      delayed = 0
      const t0 = performance.now()
      const ms = await readAll(gw, measuredKeys)
      const wallMs = performance.now() - t0
      const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { upstream: { hedges: Record<string, Run['hedges']> } }
      const run: Run = { label, ms: ms.sort((a, b) => a - b), upstreamGets: proxy.counts.byMethod.GET ?? 0, delayed, hedges: stats.upstream.hedges.bench, wallMs }
      runs.push(run)
      log(`  ${label}: p50 ${fixed(percentile(run.ms, 0.5), 1)} ms, p99 ${fixed(percentile(run.ms, 0.99), 1)} ms, p99.9 ${fixed(percentile(run.ms, 0.999), 1)} ms (p95 ${fixed(percentile(run.ms, 0.95), 1)}, p97 ${fixed(percentile(run.ms, 0.97), 1)}, p98 ${fixed(percentile(run.ms, 0.98), 1)}); ${run.upstreamGets} upstream GETs (${delayed} delayed); hedges ${JSON.stringify(run.hedges)}`)
      await gw.child.stop()
    }
  } finally {
    clearTimeout(bound)
    client.destroy()
    await proxy.close()
    await stopAll()
    await rm(dir, { recursive: true, force: true })
  }
  await report(runs, started, loadAtStart)
}

async function report(runs: Run[], started: Date, loadAtStart: string): Promise<void> {
  const [off, on] = runs as [Run, Run]
  const p99Ratio = percentile(on.ms, 0.99) / percentile(off.ms, 0.99)
  const extra = (on.upstreamGets - off.upstreamGets) / off.upstreamGets
  const met = p99Ratio <= 1 / 3 && extra <= 0.05
  const rows = runs.map((r) => [
    r.label,
    fixed(percentile(r.ms, 0.5), 1),
    fixed(percentile(r.ms, 0.99), 1),
    fixed(percentile(r.ms, 0.999), 1),
    fixed(r.ms.at(-1)!, 1),
    count(r.upstreamGets),
    String(r.delayed),
    r.hedges ? `${r.hedges.sent} / ${r.hedges.won}` : '–',
    r.hedges?.threshold_ms != null ? fixed(r.hedges.threshold_ms, 1) : '–',
    `${fixed(r.wallMs / 1000, 1)} s`,
  ])
  const body = `## Hedged reads (\`npm run bench:hedge\`, issue 12)

- Machine: ${machineLine()}
- Date: ${started.toISOString()}; load average (1 min) at start / end ${loadAtStart} / ${loadAverage()}
- s3rver behind a counting proxy that delays every ${SLOW_EVERY}th upstream GET (2%) by ${SLOW_MS} ms; ${count(REQUESTS)} cold GETs of distinct 64 KiB objects per gateway at concurrency ${CONCURRENCY} (each on a new connection), after a warm-up of ${WARM_UP} other objects; two gateway processes, one after the other, over the same proxy and objects.
- Target: p99 with hedging ≤ 1/3 of p99 without, for ≤ 5% more upstream GETs: p99 ratio **${fixed(p99Ratio, 3)}**, extra upstream GETs **${fixed(extra * 100, 1)}%** → **${met ? 'met' : 'missed'}**.

${table(['gateway', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'upstream GETs', 'delayed by the proxy', 'hedges sent / won', 'threshold at end ms', 'wall'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'])}

\`\`\`sh
npm run bench:hedge
\`\`\`
`
  process.stdout.write(`${body}\n`)
  if (!flags['no-write']) await writeSection(path.join(ROOT, 'bench/RESULTS.md'), 'hedge', body, RESULTS_PREAMBLE)
}

await main()
