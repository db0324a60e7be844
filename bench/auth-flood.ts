/**
 * Issue 16, item 4 (`npm run bench:auth-flood`): a valid client's latency while another
 * address floods the gateway with invalid presigned links, each of which costs an Ed25519
 * verification, with the failed-auth limit off (`failed_auth_per_second: 0`) and on (defaults).
 *
 * Loopback only. The gateway listens on 127.0.0.1 (pinned to the server core); the valid
 * client (this process, 127.0.0.1) sends one bearer GET of a 4 KiB cached object every
 * `--interval-ms`; the flood comes from a child process whose sockets are bound to
 * 127.0.0.2, `--concurrency` keep-alive connections back to back, each request a different
 * link signed by a key the gateway does not know (well-formed, so it is really verified).
 * Every phase lasts `--seconds`; the flooder stops itself; about 40 s in all.
 *
 *   npm run bench:auth-flood [-- --seconds 10 --concurrency 32 --interval-ms 5]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '../src/auth/keys.ts'
import { signPayload } from '../src/auth/presign.ts'
import { CLIENT_CORE, type Child, isInterrupted, onInterrupt, pinSelf, startChild, stopAll, waitForOutput } from './lib/procs.ts'
import { count, fixed, loadAverage, machineLine, table } from './lib/report.ts'
import { ROOT, startGateway } from './lib/servers.ts'

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '32' },
    'interval-ms': { type: 'string', default: '5' },
    /** Internal: run as the flooder against this gateway URL. */
    flood: { type: 'string' },
  },
})
const SECONDS = Number(flags.seconds)
const CONCURRENCY = Number(flags.concurrency)
const INTERVAL_MS = Number(flags['interval-ms'])
/** The flood starts this long before the measurement, so the limit is already in force. */
const RAMP_MS = 1000
const BEARER = 'bench-auth-flood-bearer-0123456789'
const BUCKET = 'bench'
const OBJECT = 'small.bin'
const log = (line: string) => process.stderr.write(`${line}\n`)

interface FloodReport {
  requests: number
  seconds: number
  byStatus: Record<string, number>
  errors: number
}

/** The flooder (a child process): bad links from 127.0.0.2 until `seconds` have passed. */
async function flood(base: string, seconds: number, concurrency: number): Promise<void> {
  const stranger = generateKeyPair()
  const exp = Math.floor(Date.now() / 1000) + 3600
  // Signed by a key the gateway does not have: well-formed, passes every cheap check, fails Ed25519.
  const targets = Array.from({ length: 2000 }, (_, i) => `/${BUCKET}/${OBJECT}?sig=${signPayload({ v: 1, exp: exp + i, m: 'GET', b: BUCKET, p: OBJECT }, stranger.private_key)}`)
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, localAddress: '127.0.0.2' })
  const url = new URL(base)
  const report: FloodReport = { requests: 0, seconds, byStatus: {}, errors: 0 }
  const started = performance.now()
  const deadline = started + seconds * 1000
  let next = 0
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: url.hostname, port: url.port, path: targets[next++ % targets.length], agent }, (res) => {
        res.resume()
        res.on('end', () => {
          report.requests++
          report.byStatus[res.statusCode ?? 0] = (report.byStatus[res.statusCode ?? 0] ?? 0) + 1
          resolve()
        })
      })
      req.on('error', () => {
        report.errors++
        resolve()
      })
    })
  process.stdout.write('flooding\n')
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) await one()
    }),
  )
  agent.destroy()
  report.seconds = (performance.now() - started) / 1000
  process.stdout.write(`${JSON.stringify(report)}\n`)
}

/** One bearer GET every `intervalMs` from 127.0.0.1 for `seconds`; latencies in ms. */
async function validClient(base: string, seconds: number, intervalMs: number): Promise<{ latencies: number[]; failures: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: '127.0.0.1' })
  const url = new URL(base)
  const latencies: number[] = []
  let failures = 0
  const deadline = performance.now() + seconds * 1000
  while (performance.now() < deadline) {
    const sent = performance.now()
    const status = await new Promise<number>((resolve) => {
      const req = http.get({ host: url.hostname, port: url.port, path: `/${BUCKET}/${OBJECT}`, headers: { Authorization: `Bearer ${BEARER}` }, agent }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.on('error', () => resolve(0))
    })
    const took = performance.now() - sent
    if (status === 200) latencies.push(took)
    else failures++
    if (took < intervalMs) await new Promise((resolve) => setTimeout(resolve, intervalMs - took))
  }
  agent.destroy()
  return { latencies, failures }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

interface Phase {
  name: string
  limits: Record<string, number>
  flood: boolean
}

interface PhaseResult {
  phase: Phase
  p50: number
  p99: number
  max: number
  samples: number
  failures: number
  flood?: FloodReport
}

async function runPhase(phase: Phase, dir: string, keys: { public_key: string }): Promise<PhaseResult> {
  const gw = await startGateway(`gateway-${phase.name.replace(/\W+/g, '-')}`, dir, {
    listen: '127.0.0.1:0',
    auth: { public_key: keys.public_key, bearer_token: BEARER },
    log: { level: 'info' }, // the default: each 401 is logged, as in production
    limits: phase.limits,
    stores: { [BUCKET]: { type: 'fs', root: path.join(dir, 'root') } },
  })
  try {
    await validClient(gw.url, 0.5, 1) // warm-up: fills the cache, JIT
    let flooder: Child | undefined
    let floodOut = ''
    if (phase.flood) {
      // Niced: it shares the client core with the valid client, whose own wake-ups must not
      // wait behind the flooder's (that would be client-side latency, not the gateway's).
      const args = ['-n', '19', process.execPath, import.meta.filename, '--flood', gw.url, '--seconds', String(SECONDS + RAMP_MS / 1000), '--concurrency', String(CONCURRENCY)]
      flooder = startChild('flooder', 'nice', args, { core: CLIENT_CORE, cwd: ROOT })
      flooder.process.stdout?.on('data', (d: Buffer) => (floodOut += d.toString()))
      await waitForOutput(flooder, /flooding/)
      await new Promise((resolve) => setTimeout(resolve, RAMP_MS))
    }
    const { latencies, failures } = await validClient(gw.url, SECONDS, INTERVAL_MS)
    let report: FloodReport | undefined
    if (flooder) {
      await flooder.exited
      await flooder.stop()
      report = JSON.parse(floodOut.trim().split('\n').at(-1)!) as FloodReport
    }
    const sorted = latencies.sort((a, b) => a - b)
    return { phase, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN, samples: sorted.length, failures, flood: report }
  } finally {
    await gw.child.stop()
  }
}

async function main(): Promise<void> {
  pinSelf()
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-bench-auth-flood-'))
  onInterrupt(() => rm(dir, { recursive: true, force: true }))
  try {
    await mkdir(path.join(dir, 'root'))
    await writeFile(path.join(dir, 'root', OBJECT), Buffer.alloc(4096, 'cachegate'))
    const keys = generateKeyPair()
    const phases: Phase[] = [
      { name: 'no flood', limits: {}, flood: false },
      { name: 'flood, limit off', limits: { failed_auth_per_second: 0 }, flood: true },
      { name: 'flood, limit on (defaults)', limits: {}, flood: true },
    ]
    const load = loadAverage()
    const results: PhaseResult[] = []
    for (const phase of phases) {
      log(`${phase.name}: ${SECONDS} s...`)
      results.push(await runPhase(phase, dir, keys))
    }
    const ms = (v: number) => fixed(v, 2)
    const rows = results.map((r) => [
      r.phase.name,
      ms(r.p50),
      ms(r.p99),
      ms(r.max),
      `${count(r.samples)}${r.failures ? ` (${r.failures} failed)` : ''}`,
      r.flood ? count(r.flood.requests / r.flood.seconds) : '–',
      r.flood ? Object.entries(r.flood.byStatus).map(([status, n]) => `${status}: ${count(n)}`).join(', ') + (r.flood.errors ? `, errors: ${r.flood.errors}` : '') : '–',
    ])
    const [quiet, off, on] = results as [PhaseResult, PhaseResult, PhaseResult]
    process.stdout.write(
      [
        `## Valid client under a failed-auth flood (\`npm run bench:auth-flood\`)`,
        '',
        `${machineLine()}; load ${load} → ${loadAverage()}; ${SECONDS} s per phase; valid client: one bearer GET of a 4 KiB hit every ${INTERVAL_MS} ms from 127.0.0.1; flood: ${CONCURRENCY} keep-alive connections from 127.0.0.2, bad links (a different key).`,
        '',
        table(['phase', 'p50 ms', 'p99 ms', 'max ms', 'valid requests', 'flood req/s', 'flood answers'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'l']),
        '',
        `p99 with the flood, limit off / limit on: ${fixed(off.p99 / on.p99, 1)}× (limit on vs no flood: ${fixed(on.p99 / quiet.p99, 2)}×)`,
        '',
      ].join('\n'),
    )
  } finally {
    await stopAll()
    await rm(dir, { recursive: true, force: true })
  }
}

if (flags.flood) {
  await flood(flags.flood, SECONDS, CONCURRENCY)
} else {
  await main().catch((error: unknown) => {
    if (!isInterrupted()) {
      log(String((error as Error)?.stack ?? error))
      process.exitCode = 1
    }
  })
}
