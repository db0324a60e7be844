/**
 * `npm run bench:fleet`: the fleet set-up of deploy/nginx/cachegate.conf on this machine, side
 * by side in one interleaved run (wrk, the same key set and Lua request generator for every
 * target):
 *
 * - 4 KiB and 1 MiB memory hits over 32 keys: one gateway direct; the shipped nginx conf
 *   (2 workers) in front of that one gateway; the same nginx in front of 2 gateways (one per
 *   core, keys split by the ring); nginx `proxy_cache` with 2 workers in front of s3rver;
 * - the access log's cost on 4 KiB hits: one gateway with `log.access` on vs off.
 *
 * On 2 cores wrk, nginx and the gateways all share the same two cores: see README "Running a
 * fleet" for what these ratios can and cannot show. Rewrites the "fleet" section of
 * bench/RESULTS.md unless --no-write.
 *
 *   npm run bench:fleet                                   # 5 s per run, 3 rounds (~3 minutes)
 *   npm run bench:fleet -- --duration 1 --rounds 1 --no-write   # smoke check
 */
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY } from '../test/helpers/emulators.ts'
import { freePort } from '../test/helpers/ports.ts'
import { ensureTools } from './lib/env.ts'
import { probe } from './lib/http.ts'
import { KiB, MiB, s3Client } from './lib/objects.ts'
import { isInterrupted, pinSelf, startChild, stopAll, waitForOutput } from './lib/procs.ts'
import { RESULTS_PREAMBLE, loadAverage, machineLine, table, writeSection } from './lib/report.ts'
import { ROOT, type Server, nginxVersion, startNginx, startS3rverProcess } from './lib/servers.ts'
import { figuresTable, ratioRows } from './lib/summary.ts'
import { type Target, type Workload, type WorkloadResult, runWorkload } from './lib/throughput.ts'

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    'no-write': { type: 'boolean', default: false },
  },
})
const durationSeconds = Number(flags.duration)
const rounds = Number(flags.rounds)
const connections = Number(flags.connections)
for (const [name, n] of Object.entries({ duration: durationSeconds, rounds, connections })) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
}

const BEARER = 'bench-bearer-token-0123456789abcdef'
const bearer = { Authorization: `Bearer ${BEARER}` }
const KEYS = 32
const SIZES = { '4k': 4 * KiB, '1m': MiB } as const
const keysOf = (size: keyof typeof SIZES) => Array.from({ length: KEYS }, (_, i) => `fleet/${size}-${String(i).padStart(2, '0')}`)
/** Servers may run on either core: the point is two gateways using two cores. */
const ANY_CORE = '0,1'
const log = (line: string) => process.stderr.write(`${line}\n`)

async function startGatewayOn(name: string, dir: string, s3: { url: string; bucket: string }, extra: Record<string, unknown>): Promise<Server> {
  await mkdir(dir, { recursive: true })
  const configFile = path.join(dir, `${name}.yaml`)
  const config = {
    listen: '127.0.0.1:0',
    auth: { bearer_token: BEARER },
    trust_proxy: ['127.0.0.1'],
    cache: { max_memory: '1GiB', max_object_size: '16MiB' },
    stores: { bench: { type: 's3', bucket: s3.bucket, endpoint: s3.url, allow_http: true, access_key: S3RVER_ACCESS_KEY, secret_key: S3RVER_SECRET_KEY } },
    ...extra,
  }
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`)
  const child = startChild(name, process.execPath, ['--no-memory-reducer', '--no-flush-bytecode', path.join(ROOT, 'src/main.ts'), '--config', configFile], { core: ANY_CORE, cwd: dir, stdoutFile: path.join(dir, 'stdout.log') })
  const match = await waitForOutput(child, /"msg":"listening","url":"([^"]+)"/)
  return { name, url: match[1]!, child }
}

/** nginx with the SHIPPED deploy/nginx/cachegate.conf (2 workers, no access log) in front of `gateways`. */
async function startFront(name: string, dir: string, binary: string, gateways: Server[]): Promise<Server> {
  await mkdir(path.join(dir, 'logs'), { recursive: true })
  const port = await freePort()
  const shippedParams = 'max_fails=1 fail_timeout=5s'
  await writeFile(path.join(dir, 'cachegate-listen.conf'), `listen 127.0.0.1:${port};\n`)
  await writeFile(path.join(dir, 'cachegate-upstreams.conf'), gateways.map((g) => `server ${new URL(g.url).host} ${shippedParams};\n`).join(''))
  const user = process.getuid?.() === 0 ? 'user root;' : ''
  const conf = `${user}
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  tcp_nodelay on;
  keepalive_requests 100000000;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  include ${path.join(ROOT, 'deploy/nginx/cachegate.conf')};
}
`
  await writeFile(path.join(dir, 'nginx.conf'), conf)
  const child = startChild(name, binary, ['-p', dir, '-e', path.join(dir, 'logs/error.log'), '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { core: ANY_CORE })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    try {
      await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) })
      return { name, url, child }
    } catch {
      if (child.process.exitCode !== null || i > 200) throw new Error(`${name} did not start:\n${child.output()}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

/** Warms every key twice through `url` and checks the second answer is a hit of the right size. */
function warm(url: string, paths: string[], headers: Record<string, string>, size: number, hit: [string, RegExp]) {
  return async (): Promise<string | undefined> => {
    for (const p of paths) {
      await probe(new URL(p, url).href, headers)
      const got = await probe(new URL(p, url).href, headers)
      if (got.status !== 200 || got.bytes !== size) return `${p}: ${got.status}, ${got.bytes} bytes`
      if (!hit[1].test(String(got.headers[hit[0]] ?? ''))) return `${p}: ${hit[0]} ${String(got.headers[hit[0]])} (not a hit)`
    }
    return undefined
  }
}

async function main(): Promise<void> {
  pinSelf()
  const started = new Date()
  const loadAtStart = loadAverage()
  const tools = ensureTools()
  if (!tools.nginx) throw new Error('bench:fleet needs nginx (apt-get install -y nginx)')
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-bench-fleet-'))
  const results: WorkloadResult[] = []
  try {
    const s3 = await startS3rverProcess()
    const client = s3Client(s3.url)
    log('bench: uploading objects')
    for (const size of Object.keys(SIZES) as (keyof typeof SIZES)[]) {
      for (const key of keysOf(size)) await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: randomBytes(SIZES[size]) }))
    }
    client.destroy()
    const g1 = await startGatewayOn('gateway-1', path.join(dir, 'g1'), s3, {})
    const g2 = await startGatewayOn('gateway-2', path.join(dir, 'g2'), s3, {})
    const quiet = await startGatewayOn('gateway-no-access-log', path.join(dir, 'g3'), s3, { log: { level: 'info', access: false } })
    const front1 = await startFront('nginx-front-1', path.join(dir, 'front1'), tools.nginx, [g1])
    const front2 = await startFront('nginx-front-2', path.join(dir, 'front2'), tools.nginx, [g1, g2])
    const cache = await startNginx({ binary: tools.nginx, dir: path.join(dir, 'proxy-cache'), upstream: s3.url, countedUpstream: s3.url, workers: 2, core: ANY_CORE })
    log(`bench: gateways ${g1.url} ${g2.url} ${quiet.url}; nginx fronts ${front1.url} ${front2.url}; proxy_cache ${cache.url}`)

    const hitHeader: [string, RegExp] = ['x-cg-status', /hit=1/]
    const gw = (id: string, label: string, url: string, size: keyof typeof SIZES): Target => {
      const paths = keysOf(size).map((k) => `/bench/${k}`)
      return { id, label, url, request: { paths, headers: bearer }, preflight: warm(url, paths, bearer, SIZES[size], hitHeader) }
    }
    const workloads: Workload[] = (Object.keys(SIZES) as (keyof typeof SIZES)[]).map((size) => {
      const cachePaths = keysOf(size).map((k) => `/${s3.bucket}/${k}`)
      return {
        id: `fleet-${size}`,
        title: `${size === '4k' ? '4 KiB' : '1 MiB'} hits over ${KEYS} keys`,
        dynamic: true,
        targets: [
          gw('direct', 'one gateway, direct', g1.url, size),
          gw('front-1', 'nginx (cachegate.conf) → 1 gateway', front1.url, size),
          gw('front-2', 'nginx (cachegate.conf) → 2 gateways', front2.url, size),
          { id: 'proxy-cache', label: 'nginx proxy_cache, 2 workers', url: cache.url, request: { paths: cachePaths }, preflight: warm(cache.url, cachePaths, {}, SIZES[size], ['x-cache-status', /HIT/]) },
        ],
        skipped: [],
        comparisons: [
          { subject: 'front-2', baseline: 'front-1', goal: '2 gateways vs 1 behind the same nginx' },
          { subject: 'front-1', baseline: 'direct', goal: 'the nginx hop' },
          { subject: 'front-2', baseline: 'proxy-cache', goal: 'vs nginx proxy_cache (context)' },
        ],
      }
    })
    workloads.push({
      id: 'access-log-4k',
      title: '4 KiB hits, access log',
      dynamic: true,
      targets: [gw('log-on', 'one gateway, log.access on', g1.url, '4k'), gw('log-off', 'one gateway, log.access off', quiet.url, '4k')],
      skipped: [],
      comparisons: [{ subject: 'log-on', baseline: 'log-off', goal: 'cost of the access log' }],
    })
    for (const workload of workloads) {
      log(`\n== ${workload.title} (${durationSeconds} s × ${rounds} rounds, c=${connections})`)
      results.push(await runWorkload(workload, { rounds, durationSeconds, connections, scriptDir: dir, log }))
    }
  } finally {
    await stopAll()
    await rm(dir, { recursive: true, force: true })
  }
  const ratios = ratioRows(results)
  const markdown = `
## Fleet behind nginx (\`npm run bench:fleet\`)

- Machine: ${machineLine(nginxVersion(tools.nginx))}
- Date: ${started.toISOString()} (${Math.round((Date.now() - started.getTime()) / 1000)} s)
- Settings: wrk -t1 -c${connections} (core 0), ${durationSeconds} s per run, ${rounds} rounds interleaved; gateways and nginx on either core (\`taskset -c 0,1\`), each nginx with 2 workers, no access logs in nginx. Every target gets the same ${KEYS} keys from one Lua generator.
- Load average (1 min) at start / end: ${loadAtStart} / ${loadAverage()}.
- On 2 cores the fronted runs share both cores among wrk, nginx and the gateways: the 2-gateway figure cannot show a 2× gain here; see README "Running a fleet".

${table(['workload', 'comparison', 'per-round ratios', 'median', 'what', 'verdict'], ratios.rows)}

${figuresTable(results)}

\`\`\`sh
npm run bench:fleet${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}
\`\`\`
`
  process.stdout.write(markdown)
  if (!flags['no-write']) {
    await writeSection(path.join(ROOT, 'bench/RESULTS.md'), 'fleet', markdown, RESULTS_PREAMBLE)
    log('\nbench: wrote bench/RESULTS.md (section "fleet")')
  }
}

main().catch((error: unknown) => {
  if (isInterrupted()) return
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`)
  process.exitCode = 1
})
