/**
 * `npm run bench:passthrough`: the two measurements issue 3 asks for.
 *
 * 1. Peak RSS of the gateway process (VmRSS sampled every 50 ms from /proc/<pid>/status,
 *    and VmHWM) while a client GETs a 1 GiB object that is not cacheable, against its idle
 *    RSS: a fast client, and a slow one (the gateway must apply backpressure, not buffer).
 * 2. Time to first byte of a 256 MiB cold GET through the gateway vs the same GET made
 *    directly to s3rver (SigV4-signed), median of several runs.
 *
 * Writes the "passthrough" section of bench/RESULTS.md.
 *
 *   npm run bench:passthrough [-- --runs 5 --slow-rate 128]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY } from '../test/helpers/emulators.ts'
import { directGet, settle } from './lib/cold.ts'
import { type TimedGet, timedGet } from './lib/http.ts'
import { GiB, MiB, copyObject, randomChunks, s3Client, uploadStream } from './lib/objects.ts'
import { isInterrupted, onInterrupt, pinSelf, stopAll } from './lib/procs.ts'
import { RESULTS_PREAMBLE, count, fixed, loadAverage, machineLine, median, table, writeSection } from './lib/report.ts'
import { sampleMemory } from './lib/rss.ts'
import { type GatewayServer, ROOT, startGateway, startS3rverProcess } from './lib/servers.ts'

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    'slow-rate': { type: 'string', default: '128' },
    'no-write': { type: 'boolean', default: false },
  },
})
const runs = Number(flags.runs)
const slowRate = Number(flags['slow-rate']) * MiB
const BEARER = 'bench-bearer-token-0123456789abcdef'
const auth = { Authorization: `Bearer ${BEARER}` }
const BIG = 'passthrough/1g'
const COLD = 'passthrough/256m'
const log = (line: string) => process.stderr.write(`${line}\n`)
const mib = (bytes: number) => `${fixed(bytes / MiB, 1)} MiB`

interface RssRow {
  label: string
  idle: number
  peak: number
  hwmBefore: number
  hwmAfter: number
  got: TimedGet
}

async function idleRss(gw: GatewayServer): Promise<{ rss: number; hwm: number }> {
  // A few small requests first, so "idle" is a process that has served, not a fresh one.
  for (let i = 0; i < 5; i++) await fetch(`${gw.url}/health`).then((r) => r.text())
  const sampler = sampleMemory(gw.child.pid)
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const samples = await sampler.stop()
  return { rss: median(samples.map((s) => s.rss)), hwm: samples.at(-1)!.hwm }
}

async function measureRss(gw: GatewayServer, label: string, options: { bytesPerSecond?: number } = {}): Promise<RssRow> {
  const idle = await idleRss(gw)
  const sampler = sampleMemory(gw.child.pid)
  const got = await timedGet(`${gw.url}/bench/${BIG}`, auth, options)
  const samples = await sampler.stop()
  if (got.status !== 200 || got.bytes !== GiB) throw new Error(`${label}: status ${got.status}, ${got.bytes} bytes`)
  const row = { label, idle: idle.rss, peak: Math.max(...samples.map((s) => s.rss)), hwmBefore: idle.hwm, hwmAfter: samples.at(-1)!.hwm, got }
  log(`  ${label}: idle ${mib(row.idle)}, peak ${mib(row.peak)} (+${mib(row.peak - row.idle)}), VmHWM ${mib(row.hwmBefore)} → ${mib(row.hwmAfter)}, ${count(got.totalMs)} ms, X-CG-Status ${String(got.headers['x-cg-status'])}`)
  return row
}

async function main(): Promise<void> {
  pinSelf()
  const started = new Date()
  const loadAtStart = loadAverage()
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-passthrough-'))
  onInterrupt(() => rm(dir, { recursive: true, force: true }))
  const s3 = await startS3rverProcess()
  const client = s3Client(s3.url)
  let rssRows: RssRow[] = []
  /** `upstreamMs`: the gateway's own upstream GET, request to response headers (its /metrics). */
  const ttfb: { direct: TimedGet; gateway: TimedGet; upstreamMs: number }[] = []
  try {
    log('passthrough: uploading 1 GiB and 256 MiB objects (streamed from a generator)')
    await uploadStream(client, s3.bucket, BIG, randomChunks(GiB))
    await uploadStream(client, s3.bucket, COLD, randomChunks(256 * MiB))
    const store = { type: 's3', bucket: s3.bucket, endpoint: s3.url, allow_http: true, access_key: S3RVER_ACCESS_KEY, secret_key: S3RVER_SECRET_KEY }
    const config = (cache: Record<string, unknown>) => ({ listen: '127.0.0.1:0', auth: { bearer_token: BEARER }, cache, log: { level: 'info' }, stores: { bench: store } })
    // Not cacheable at all: over max_object_size, and no page caching.
    const gw = await startGateway('gateway-passthrough', path.join(dir, 'gw'), config({ max_memory: '64MiB', max_object_size: '16MiB', page_size: 0 }))
    // The defaults (512 MiB memory, 64 MiB objects, 16 MiB pages), for comparison.
    const gwDefaults = await startGateway('gateway-defaults', path.join(dir, 'gw-defaults'), config({}))

    log('\n== peak RSS while a client GETs 1 GiB')
    rssRows = [
      await measureRss(gw, 'page_size 0 (not cacheable), fast client'),
      await measureRss(gw, `page_size 0 (not cacheable), client reading ${flags['slow-rate']} MiB/s`, { bytesPerSecond: slowRate }),
      await measureRss(gwDefaults, 'defaults, 1st GET (size unknown: streamed through), fast client'),
      await measureRss(gwDefaults, 'defaults, 2nd GET (16 MiB pages, cached up to max_memory), fast client'),
    ]

    log(`\n== TTFB of a cold 256 MiB GET (${runs} runs + 1 warm-up)`)
    for (let i = -1; i < runs; i++) {
      const key = `${COLD}-${i < 0 ? 'warm-up' : i}`
      await copyObject(client, s3.bucket, COLD, key)
      let upstreamMs = 0
      const viaGateway = async () => {
        await settle([gw])
        const before = await gw.upstreamMs('get')
        const got = await timedGet(`${gw.url}/bench/${key}`, auth)
        upstreamMs = (await gw.upstreamMs('get')) - before
        return got
      }
      const viaDirect = async () => {
        await settle([gw])
        return directGet({ s3: { url: s3.url, bucket: s3.bucket } }, key)
      }
      let direct: TimedGet
      let gateway: TimedGet
      if (i % 2 !== 1) {
        direct = await viaDirect()
        gateway = await viaGateway()
      } else {
        gateway = await viaGateway()
        direct = await viaDirect()
      }
      for (const got of [direct, gateway]) if (got.status !== 200 || got.bytes !== 256 * MiB) throw new Error(`cold GET: status ${got.status}, ${got.bytes} bytes`)
      if (i < 0) continue
      log(`  run ${i + 1}: TTFB direct ${fixed(direct.ttfbMs, 1)} ms, gateway ${fixed(gateway.ttfbMs, 1)} ms (its upstream GET: ${fixed(upstreamMs, 1)} ms to headers); total ${count(direct.totalMs)} / ${count(gateway.totalMs)} ms`)
      ttfb.push({ direct, gateway, upstreamMs })
    }
  } finally {
    client.destroy()
    await stopAll()
    await rm(dir, { recursive: true, force: true })
  }

  const rssTable = table(
    ['1 GiB GET through the gateway', 'idle RSS', 'peak RSS (50 ms samples)', 'peak − idle', 'VmHWM before → after', 'GET time', 'X-CG-Status'],
    rssRows.map((r) => [r.label, mib(r.idle), mib(r.peak), `**+${mib(r.peak - r.idle)}**`, `${mib(r.hwmBefore)} → ${mib(r.hwmAfter)}`, `${fixed(r.got.totalMs / 1000, 1)} s`, String(r.got.headers['x-cg-status'])]),
    ['l', 'r', 'r', 'r', 'r', 'r', 'l'],
  )
  const delta = ttfb.map((t) => t.gateway.ttfbMs - t.direct.ttfbMs)
  const ttfbTable = table(
    ['run', 'TTFB direct ms', 'TTFB gateway ms', 'Δ ms', "gateway's upstream GET to headers ms", 'total direct ms', 'total gateway ms'],
    [
      ...ttfb.map((t, i) => [String(i + 1), fixed(t.direct.ttfbMs, 1), fixed(t.gateway.ttfbMs, 1), fixed(delta[i]!, 1), fixed(t.upstreamMs, 1), count(t.direct.totalMs), count(t.gateway.totalMs)]),
      [
        '**median**',
        fixed(median(ttfb.map((t) => t.direct.ttfbMs)), 1),
        fixed(median(ttfb.map((t) => t.gateway.ttfbMs)), 1),
        `**${fixed(median(delta), 1)}**`,
        fixed(median(ttfb.map((t) => t.upstreamMs)), 1),
        count(median(ttfb.map((t) => t.direct.totalMs))),
        count(median(ttfb.map((t) => t.gateway.totalMs))),
      ],
    ],
    ['r', 'r', 'r', 'r', 'r', 'r', 'r'],
  )
  const worst = Math.max(...rssRows.slice(0, 3).map((r) => r.peak - r.idle))
  const markdown = `
## Pass-through memory and cold TTFB (\`npm run bench:passthrough\`, issue 3)

- Machine: ${machineLine()}
- Date: ${started.toISOString()}; load average (1 min) at start / end ${loadAtStart} / ${loadAverage()}
- Gateway (\`max_memory 64MiB, max_object_size 16MiB, page_size 0\`) pinned to core 1; the client and s3rver (standing for remote storage) to core 0; each GET on a new connection.
- Flat memory while streaming an uncacheable 1 GiB object (fast and slow client, and the defaults' first GET): worst peak − idle **+${mib(worst)}** → ${worst <= 64 * MiB ? '**met** (within tens of MiB)' : '**MISSED**'}.

${rssTable}

The last row is not a pass-through: with the default \`page_size\` (16 MiB) a second GET of an object whose size is now known is read in pages that are cached, so RSS grows up to \`max_memory\` by design.

### Time to first byte, cold 256 MiB GET (gateway with \`page_size 0\`: streamed through), vs a SigV4-signed GET straight to s3rver

${ttfbTable}

\`\`\`sh
npm run bench:passthrough${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}
\`\`\`
`
  process.stdout.write(markdown)
  if (!flags['no-write']) {
    await writeSection(path.join(ROOT, 'bench/RESULTS.md'), 'passthrough', markdown, RESULTS_PREAMBLE)
    log('\npassthrough: wrote bench/RESULTS.md (section "passthrough")')
  }
}

main().catch((error: unknown) => {
  if (isInterrupted()) return
  process.stderr.write(`passthrough: ${(error as Error).stack ?? String(error)}\n`)
  process.exitCode = 1
})
