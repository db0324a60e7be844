/**
 * Issue 15 (`npm run bench:s3`): GetObject of cached 4 KiB and 1 MiB objects through the S3
 * front end against the same objects through a bearer GET, side by side, interleaved rounds,
 * ratios printed. Target: the SigV4 check costs at most 30% of a 4 KiB hit (S3 ≥ 0.70× bearer).
 *
 * Clients per size, each a wrk Lua `request()` (the generator costs the same on every side):
 * - `bearer`: `Authorization: Bearer …`;
 * - `s3`: one SigV4 header set, signed at start (X-Amz-Date within the 15-minute skew), sent
 *   again and again; the gateway keeps no verified-request cache, so each is a full check
 *   (canonical request, SHA-256, HMAC; only the signing key is kept per day);
 * - `s3 varied`: `--signatures` header sets (default 1,000), each signing a different
 *   `x-amz-meta-nonce`, sent in turn: the same check with a canonical request that changes.
 *
 * Besides req/s (which a busy machine skews), the gateway's own CPU time per request is shown
 * (user + system, from /proc; Linux): the cost of each path, whatever else runs beside it.
 * The verdict takes the median of each round's ratio to the bearer run just before it (paired:
 * a neighbour's burst weighs on both), with the quartiles beside it; many short rounds pair
 * better than a few long ones on a shared machine.
 *
 *   npm run bench:s3 [-- --duration 5 --rounds 3 --connections 32 --signatures 1000]
 *   npm run bench:s3 -- --sizes 4k --root /path/to/other/checkout   # 4 KiB only; that checkout's gateway
 *   npm run bench:s3 -- --baseline-root /path/to/old/checkout        # and the old code's gateway beside it, rounds interleaved
 * Writes the "s3" section of bench/RESULTS.md (not with --root or --no-write).
 * A run must finish within 15 minutes of its start (the signatures' clock skew).
 */
import { execFileSync } from 'node:child_process'
import { createHash, createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { isInterrupted, onInterrupt, pinSelf, runToEnd, stopAll } from './lib/procs.ts'
import { RESULTS_PREAMBLE, count, fixed, loadAverage, machineLine, median, table, writeSection } from './lib/report.ts'
import { ROOT, startGateway } from './lib/servers.ts'

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    signatures: { type: 'string', default: '1000' },
    sizes: { type: 'string', default: '4k,1m' },
    root: { type: 'string' },
    'baseline-root': { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
})
const positive = (value: string, name: string) => {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
  return n
}
const DURATION = positive(flags.duration!, 'duration')
const ROUNDS = positive(flags.rounds!, 'rounds')
const CONNECTIONS = positive(flags.connections!, 'connections')
const SIGNATURES = positive(flags.signatures!, 'signatures')
const BEARER = 'bench-s3-bearer-token-0123456789'
const ACCESS_KEY = 'bench-s3'
const SECRET_KEY = 'bench-s3-secret-0123456789abcdef'
const REGION = 'us-east-1'
const BUCKET = 'bench'
const SIZES = [
  { id: '4k', name: '4 KiB', key: 'small.bin', size: 4096 },
  { id: '1m', name: '1 MiB', key: 'large.bin', size: 2 ** 20 },
]
const wanted = flags.sizes!.split(',')
for (const id of wanted) if (!SIZES.some((s) => s.id === id)) throw new Error(`--sizes: a list of ${SIZES.map((s) => s.id).join(', ')}`)
const OBJECTS = SIZES.filter((s) => wanted.includes(s.id))
const log = (line: string) => process.stderr.write(`${line}\n`)

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex')
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest()

/** SigV4 headers of one GetObject (AWS docs "Create a canonical request"); `nonce` is signed as x-amz-meta-nonce when given. */
function signGet(base: string, key: string, date: Date, nonce?: number): Record<string, string> {
  const url = new URL(`/${BUCKET}/${key}`, base)
  const amzDate = date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  const day = amzDate.slice(0, 8)
  const headers: Record<string, string> = { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-date': amzDate }
  if (nonce !== undefined) headers['x-amz-meta-nonce'] = String(nonce)
  const names = Object.keys(headers).sort()
  const canonical = ['GET', url.pathname, '', ...names.map((n) => `${n}:${headers[n]}`), '', names.join(';'), 'UNSIGNED-PAYLOAD'].join('\n')
  const scope = `${day}/${REGION}/s3/aws4_request`
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${SECRET_KEY}`, day), REGION), 's3'), 'aws4_request')
  const signature = createHmac('sha256', signingKey).update(['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n')).digest('hex')
  const { host: _host, ...sent } = headers
  return { ...sent, Authorization: `AWS4-HMAC-SHA256 Credential=${ACCESS_KEY}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}` }
}

const lua = (value: string) => JSON.stringify(value)

const DONE = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end`

/** A wrk script sending GET `path` with each header set of `sets` in turn. */
function script(path: string, sets: Record<string, string>[]): string {
  const rows = sets.map((set) => `{ ${Object.entries(set).map(([k, v]) => `[${lua(k)}] = ${lua(v)}`).join(', ')} }`)
  return `local sets = {
${rows.join(',\n')}
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", ${lua(path)}, sets[(i % #sets) + 1])
end
${DONE}
`
}

interface Run {
  rps: number
  p99Ms: number
  errors: number
  /** The gateway's CPU time per request, µs (NaN without /proc). */
  cpuUs: number
}

/** User + system CPU time of process `pid` in ms (/proc/<pid>/stat, clock ticks of 10 ms), NaN where there is no /proc. */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return Number.NaN
  }
}

async function wrk(base: string, file: string, pid: number): Promise<Run> {
  const cpuBefore = cpuMs(pid)
  const stdout = await runToEnd('wrk', 'wrk', ['-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--timeout', '30s', '-s', file, base])
  const match = /WRKJSON (\{.*\})/.exec(stdout)
  if (!match) throw new Error(`wrk printed no summary:\n${stdout}`)
  const raw = JSON.parse(match[1]!) as { requests: number; duration_us: number; errors: number; p99_us: number }
  return { rps: raw.requests / (raw.duration_us / 1e6), p99Ms: raw.p99_us / 1000, errors: raw.errors, cpuUs: ((cpuMs(pid) - cpuBefore) * 1000) / raw.requests }
}

/** The checkout's commit, for the report (`?` outside git). */
function commitOf(root: string): string {
  try {
    return execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return '?'
  }
}

/** Median and quartiles (nearest rank). */
function quartiles(values: readonly number[]): { low: number; median: number; high: number } {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  return { low: at(0.25), median: median(sorted), high: at(0.75) }
}

interface Variant {
  gateway: string
  name: string
  file: string
  object: (typeof OBJECTS)[number]
  pid: number
  url: string
}

/** A gateway from `root` with the S3 API on, the objects PUT into its cache and a wrk script per client. */
async function prepare(label: string, dir: string, root: string | undefined, started: Date): Promise<Variant[]> {
  const gateway = await startGateway(`gateway-${label}`, path.join(dir, label), {
    listen: '127.0.0.1:0',
    auth: { bearer_token: BEARER },
    stores: { [BUCKET]: { type: 'fs', root: path.join(dir, label, 'root') } },
    cache: { max_memory: '256MiB', max_object_size: '8MiB' },
    s3_api: { region: REGION, credentials: [{ access_key_id: ACCESS_KEY, secret_access_key: SECRET_KEY, buckets: [BUCKET] }] },
    // info: the bench waits for the "listening" line.
    log: { level: 'info' },
  }, [], root)
  const variants: Variant[] = []
  for (const object of OBJECTS) {
    // The PUT caches the object: every GET below is a memory hit.
    const put = await fetch(`${gateway.url}/${BUCKET}/${object.key}`, { method: 'PUT', headers: { Authorization: `Bearer ${BEARER}` }, body: new Uint8Array(object.size).fill(7) })
    if (put.status !== 200) throw new Error(`PUT ${object.key}: ${put.status}`)
    const target = `/${BUCKET}/${object.key}`
    const files = {
      bearer: script(target, [{ Authorization: `Bearer ${BEARER}` }]),
      s3: script(target, [signGet(gateway.url, object.key, started)]),
      's3 varied': script(target, Array.from({ length: SIGNATURES }, (_, i) => signGet(gateway.url, object.key, started, i))),
    }
    for (const [name, text] of Object.entries(files)) {
      const file = path.join(dir, `${label}-${object.key}-${name.replace(' ', '-')}.lua`)
      await writeFile(file, text)
      variants.push({ gateway: label, name, file, object, pid: gateway.child.pid!, url: gateway.url })
    }
    // Each client is checked once before it is measured: a refused request would measure an error path.
    for (const headers of [{ Authorization: `Bearer ${BEARER}` }, signGet(gateway.url, object.key, started, 1)]) {
      const res = await fetch(`${gateway.url}${target}`, { headers })
      if (res.status !== 200) throw new Error(`GET ${target}: ${res.status} ${await res.text()}`)
      await res.arrayBuffer()
    }
  }
  return variants
}

async function main(): Promise<void> {
  pinSelf()
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-bench-s3-'))
  onInterrupt(() => rm(dir, { recursive: true, force: true }))
  const load = loadAverage()
  try {
    const started = new Date()
    const variants = await prepare('this', dir, flags.root ? path.resolve(flags.root) : undefined, started)
    if (flags['baseline-root']) variants.push(...(await prepare('baseline', dir, path.resolve(flags['baseline-root']), started)))
    const results = new Map<Variant, Run[]>(variants.map((v) => [v, []]))
    for (let round = 1; round <= ROUNDS; round++) {
      for (const variant of variants) {
        if (isInterrupted()) return
        const run = await wrk(variant.url, variant.file, variant.pid)
        log(`round ${round}: ${variant.gateway} ${variant.object.name} ${variant.name}: ${count(run.rps)} req/s, p99 ${fixed(run.p99Ms)} ms, gateway CPU ${fixed(run.cpuUs, 1)} µs/req${run.errors ? `, ${run.errors} errors` : ''}`)
        results.get(variant)!.push(run)
      }
    }
    if (Date.now() - started.getTime() > 15 * 60 * 1000) log('warning: the run outlasted the 15-minute clock skew; late requests were refused (see errors)')
    const of = (gateway: string, object: (typeof OBJECTS)[number], name: string) => results.get(variants.find((v) => v.gateway === gateway && v.object === object && v.name === name)!)!
    const sections: string[] = []
    for (const gateway of flags['baseline-root'] ? ['this', 'baseline'] : ['this']) {
      const rows: string[][] = []
      const verdicts: string[] = []
      for (const object of OBJECTS) {
        const bearerRuns = of(gateway, object, 'bearer')
        const bearer = median(bearerRuns.map((r) => r.rps))
        const bearerCpu = median(bearerRuns.map((r) => r.cpuUs))
        for (const name of ['bearer', 's3', 's3 varied']) {
          const runs = of(gateway, object, name)
          const rps = median(runs.map((r) => r.rps))
          const cpu = median(runs.map((r) => r.cpuUs))
          // Each round against the bearer run measured just before it: a noisy neighbour then weighs on both.
          const paired = quartiles(runs.map((r, i) => r.rps / bearerRuns[i]!.rps))
          rows.push([object.name, name, count(rps), fixed(median(runs.map((r) => r.p99Ms))), fixed(rps / bearer), `${fixed(paired.median)} (${fixed(paired.low)}–${fixed(paired.high)})`, fixed(cpu, 1), fixed(bearerCpu / cpu), String(runs.reduce((n, r) => n + r.errors, 0))])
        }
        if (object.size === 4096) {
          const s3 = quartiles(of(gateway, object, 's3').map((r, i) => r.rps / bearerRuns[i]!.rps)).median
          verdicts.push(`4 KiB hit through S3: ${fixed(s3)}× bearer (median of the rounds' paired ratios) → the S3 front end (SigV4 check included) costs ${fixed((1 - s3) * 100, 0)}% (target ≤ 30%: ${s3 >= 0.7 ? 'met' : 'missed'})`)
        }
      }
      sections.push(
        ...(flags['baseline-root'] ? [`### ${gateway === 'this' ? `this checkout (${commitOf(ROOT)})` : `baseline: ${flags['baseline-root']} (${commitOf(flags['baseline-root'])})`}`, ''] : []),
        table(['object', 'client', 'req/s', 'p99 ms', '× bearer', '× bearer, paired (IQR)', 'gw CPU µs/req', 'bearer CPU ÷ this', 'errors'], rows, ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r']),
        '',
        ...verdicts,
        '',
      )
    }
    if (flags['baseline-root']) {
      // Per round, this checkout's CPU per request against the baseline's for the same client: the pairing cancels most of a noisy neighbour.
      const rows = OBJECTS.flatMap((object) =>
        ['bearer', 's3', 's3 varied'].map((name) => {
          const mine = of('this', object, name)
          const theirs = of('baseline', object, name)
          const ratios = mine.map((run, i) => theirs[i]!.cpuUs / run.cpuUs)
          return [object.name, name, fixed(median(ratios)), `${fixed(Math.min(...ratios))}–${fixed(Math.max(...ratios))}`]
        }),
      )
      sections.push('### this checkout against the baseline (baseline CPU ÷ this CPU, per round; > 1: cheaper now)', '', table(['object', 'client', 'median', 'rounds'], rows, ['l', 'l', 'r', 'r']), '')
    }
    const markdown = [
      '## S3 front end vs bearer GET (`npm run bench:s3`, issue 15)',
      '',
      `${machineLine()}; ${new Date().toISOString()}; load ${load} → ${loadAverage()}; ${DURATION} s × ${ROUNDS} interleaved rounds, c=${CONNECTIONS}; medians`,
      '',
      ...sections,
      '```sh',
      `npm run bench:s3 -- ${process.argv.slice(2).join(' ')}`.trimEnd(),
      '```',
      '',
    ].join('\n')
    process.stdout.write(markdown)
    // Another checkout's gateway measured alone says nothing about this one.
    if (!flags['no-write'] && !flags.root) {
      await writeSection(path.join(ROOT, 'bench/RESULTS.md'), 's3', markdown, RESULTS_PREAMBLE)
      log('bench: wrote bench/RESULTS.md (section "s3")')
    }
  } finally {
    await stopAll()
    await rm(dir, { recursive: true, force: true })
  }
}

await main().catch((error: unknown) => {
  if (!isInterrupted()) {
    log(String((error as Error)?.stack ?? error))
    process.exitCode = 1
  }
})
