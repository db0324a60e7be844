/**
 * `npm run bench`: the gateway against raw node:http and nginx proxy_cache, side by side in
 * one interleaved run on this machine, as ratios against the issue-6 targets. Regenerates
 * the "run" section of bench/RESULTS.md. See bench/README.md ("Throughput benchmark").
 *
 *   npm run bench                           # 5 s per wrk run, 3 rounds (about 8 minutes)
 *   npm run bench -- --quick                # 2 s per run, 3 rounds, 2 cold repetitions
 *   npm run bench -- --duration 10 --rounds 5 --only hit-4k,auth-4k
 *   npm run bench -- --revalidate --only hit-4k-reval,hit-1m-reval   # the freshness check's cost
 */
import path from 'node:path'
import { parseArgs } from 'node:util'
import { type ColdRep, type CoalesceRound, coalesce, coldMiss } from './lib/cold.ts'
import { startEnv } from './lib/env.ts'
import { isInterrupted } from './lib/procs.ts'
import { RESULTS_PREAMBLE, loadAverage, machineLine, table, writeSection } from './lib/report.ts'
import { ROOT } from './lib/servers.ts'
import { coalesceSection, coldSection, figuresTable, ratioRows } from './lib/summary.ts'
import { OPTIONAL_WORKLOADS, type WorkloadResult, runWorkload, workloads } from './lib/throughput.ts'

const WORKLOAD_IDS = ['hit-4k', 'hit-1m', 'hit-16m', 'range-64k', 'disk-1m', 'auth-4k', 'cold', 'coalesce', ...OPTIONAL_WORKLOADS]

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    connections: { type: 'string', default: '32' },
    'cold-reps': { type: 'string' },
    only: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    'gateway-root': { type: 'string' },
    revalidate: { type: 'boolean', default: false },
    'baseline-root': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

if (flags.help) {
  process.stdout.write(`usage: npm run bench -- [--quick] [--duration S] [--rounds N] [--connections C] [--cold-reps N]
                       [--only ${WORKLOAD_IDS.join(',')}] [--no-write] [--gateway-root DIR]
  --gateway-root DIR   run the gateways from another checkout (measure a patch; implies --no-write)
  --revalidate         also run ${OPTIONAL_WORKLOADS.join(', ')}: hits with revalidate_after on vs off
                       (a second memory-tier gateway; these run only with this flag or when named in --only)
  --baseline-root DIR  also run hit-4k-ab, hit-1m-ab: this checkout's gateway against one started from DIR
                       (the code before a change), same config, side by side in one run
`)
  process.exit(0)
}

const positive = (value: string | undefined, fallback: number, name: string) => {
  const n = value === undefined ? fallback : Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
  return n
}
const durationSeconds = positive(flags.duration, flags.quick ? 2 : 5, 'duration')
const rounds = positive(flags.rounds, 3, 'rounds')
const connections = positive(flags.connections, 32, 'connections')
// Cold totals swing with whatever else the machine does: 5 repetitions give a steadier median.
const coldReps = positive(flags['cold-reps'], flags.quick ? 2 : 5, 'cold-reps')
const only = flags.only ? new Set(flags.only.split(',')) : undefined
for (const id of only ?? []) if (!WORKLOAD_IDS.includes(id)) throw new Error(`--only: unknown workload ${id} (${WORKLOAD_IDS.join(', ')})`)
const AB_WORKLOADS = ['hit-4k-ab', 'hit-1m-ab']
const wanted = (id: string) => (only ? only.has(id) : !OPTIONAL_WORKLOADS.includes(id) || (AB_WORKLOADS.includes(id) ? flags['baseline-root'] !== undefined : flags.revalidate))
const revalidate = flags.revalidate || ['hit-4k-reval', 'hit-1m-reval'].some((id) => only?.has(id))
const baselineRoot = flags['baseline-root'] ? path.resolve(flags['baseline-root']) : undefined

const log = (line: string) => process.stderr.write(`${line}\n`)

async function main(): Promise<void> {
  const started = new Date()
  const loadAtStart = loadAverage()
  const root = flags['gateway-root'] ? path.resolve(flags['gateway-root']) : undefined
  const env = await startEnv({ cold: wanted('cold'), root, revalidate, baselineRoot })
  let results: WorkloadResult[] = []
  let cold: ColdRep[] = []
  let coalesced: CoalesceRound[] = []
  try {
    log(`bench: gateway ${env.gateway.url}, raw ${env.rawBuffer.url}, nginx ${env.nginx?.url ?? '(none)'}, s3rver ${env.s3.url}`)
    if (!env.gatewayDisk) log(`bench: ${env.diskNote}`)
    for (const workload of workloads(env)) {
      if (!wanted(workload.id)) continue
      log(`\n== ${workload.title} (${durationSeconds} s × ${rounds} rounds, c=${connections})`)
      results.push(await runWorkload(workload, { rounds, durationSeconds, connections, scriptDir: env.dir, log }))
    }
    if (wanted('cold')) {
      log(`\n== cold 256 MiB miss (${coldReps} repetitions)`)
      cold = await coldMiss(env, coldReps, log)
    }
    if (wanted('coalesce')) {
      log('\n== 50 concurrent cold GETs of one 16 MiB key')
      coalesced = await coalesce(env, rounds, 50, log)
    }
  } finally {
    await env.close()
  }
  results = results.filter((r) => r.runs.size > 0 || r.skipped.size > 0 || r.workload.skipped.length > 0)

  const ratios = ratioRows(results)
  const coldPart = coldSection(cold)
  const coalescePart = coalesceSection(coalesced, 50)
  const verdicts = [...ratios.verdicts, ...coldPart.verdicts, ...coalescePart.verdicts]
  const met = verdicts.filter((v) => v === 'met').length
  const missed = verdicts.filter((v) => v === 'missed').length
  const skipped = verdicts.filter((v) => v === 'skipped').length
  const argv = process.argv.slice(2).join(' ')
  const markdown = `
## Throughput, cold misses, coalescing (\`npm run bench\`)

- Machine: ${machineLine(env.nginxVersion)}
- Date: ${started.toISOString()} (${Math.round((Date.now() - started.getTime()) / 1000)} s)
- Settings: wrk -t1 -c${connections}, ${durationSeconds} s per run, ${rounds} rounds interleaved (A B C A B C ...) after one unrecorded warm-up run per server; wrk, the harness and s3rver (standing for remote storage) pinned to core 0, every server under test (gateways, raw node:http, nginx) to core 1 with \`taskset\`.
- Load average (1 min) at start / end: ${loadAtStart} / ${loadAverage()} (the servers use 1 core and wrk the other: more than ~2 means other work shared the machine).
- Verdicts: ${met} met, ${missed} missed, ${skipped} skipped.

### Ratios against the issue-6 targets

Ratio = subject req/s ÷ baseline req/s in the same round; the verdict uses the median of the per-round ratios.

${table(['workload', 'comparison', 'per-round ratios', 'median', 'target', 'verdict'], ratios.rows)}

### Figures (medians over rounds)

${figuresTable(results)}

### Cold 256 MiB miss: gateway vs a SigV4-signed GET straight to s3rver

Each repetition reads a fresh server-side copy (a real cold miss) on a new connection; the direct GET goes first in odd repetitions and last in even ones. Verdicts compare medians of per-repetition differences and ratios.

${coldPart.text}

### 50 concurrent cold GETs of one 16 MiB key (upstream counted by a proxy in front of s3rver)

${coalescePart.text}

### Commands

\`\`\`sh
npm run bench${argv ? ` -- ${argv}` : ''}
# what it starts (all on 127.0.0.1; servers under test on taskset -c 1, s3rver and wrk on -c 0):
#   node src/main.ts --config gateway.yaml        (memory tier, max_memory 3GiB, max_object_size 512MiB)
#   node src/main.ts --config gateway-defaults.yaml  (default cache settings: cold 256 MiB streamed / paged)
#   node src/main.ts --config gateway-disk.yaml   (max_memory 4MiB, max_object_size 2MiB, page_size 0, max_disk 1GiB; skipped without a disk tier)
#   node bench/lib/raw-server.ts buffer|stream <dir> [highWaterMark]
#   nginx -p <tmp> -c <tmp>/nginx.conf -g 'daemon off;'   (proxy_cache + proxy_cache_lock in front of s3rver)
#   node bench/lib/raw-proxy.ts <s3rver>   (cold-miss reference: a bare node:http pipe proxy)
#   node bench/lib/s3rver-main.ts
# and the load: taskset -c 0 wrk -t1 -c${connections} -d${durationSeconds}s --timeout 30s -s <script.lua> <url>
\`\`\`
`
  process.stdout.write(markdown)
  if (!flags['no-write'] && !root && !baselineRoot) {
    await writeSection(path.join(ROOT, 'bench/RESULTS.md'), 'run', markdown, RESULTS_PREAMBLE)
    log('\nbench: wrote bench/RESULTS.md (section "run")')
  }
}

main().catch((error: unknown) => {
  if (isInterrupted()) return
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`)
  process.exitCode = 1
})
