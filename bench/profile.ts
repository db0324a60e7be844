/**
 * `npm run bench:profile`: runs the gateway under `node --cpu-prof` with one workload, stops
 * it cleanly (SIGTERM, so the profile is written) and prints the top functions by self time.
 *
 *   npm run bench:profile                                  # 4 KiB memory hits, bearer, 10 s of wrk
 *   npm run bench:profile -- --workload presigned-4k       # 4 KiB hits, 20,000 distinct presigned URLs (uncached verification)
 *   npm run bench:profile -- --workload s3-4k              # 4 KiB hits through the S3 front end (one SigV4 header set, fully verified each time)
 *   npm run bench:profile -- --workload hit-1m | disk-1m | cold-stream | cold-fill [--seconds 10] [--top 30]
 *   npm run bench:profile -- --root /path/to/other/checkout   # profile a patched copy
 *
 * The .cpuprofile is kept (path printed) for Chrome DevTools or speedscope.
 */
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '../src/auth/keys.ts'
import { presign } from '../src/auth/presign.ts'
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY } from '../test/helpers/emulators.ts'
import { formatSummary, readProfile } from './lib/cpuprofile.ts'
import { probe, timedGet } from './lib/http.ts'
import { KiB, MiB, copyObject, randomChunks, s3Client, uploadStream } from './lib/objects.ts'
import { isInterrupted, onInterrupt, pinSelf, stopAll } from './lib/procs.ts'
import { startGateway, startS3rverProcess } from './lib/servers.ts'
import { signedGetHeaders } from './lib/sigv4.ts'
import { runWrk } from './lib/wrk.ts'

const WORKLOADS = ['hit-4k', 'presigned-4k', 's3-4k', 'hit-1m', 'disk-1m', 'cold-stream', 'cold-fill'] as const
type WorkloadId = (typeof WORKLOADS)[number]

const { values: flags } = parseArgs({
  options: {
    workload: { type: 'string', default: 'hit-4k' },
    seconds: { type: 'string', default: '10' },
    top: { type: 'string', default: '20' },
    root: { type: 'string' },
  },
})
const workload = flags.workload as WorkloadId
if (!WORKLOADS.includes(workload)) throw new Error(`--workload: one of ${WORKLOADS.join(', ')}`)
const seconds = Number(flags.seconds)
const BEARER = 'bench-bearer-token-0123456789abcdef'
const bearer = { Authorization: `Bearer ${BEARER}` }
const S3_KEYS = { accessKey: 'profile-s3', secretKey: 'profile-s3-secret-0123456789abcdef', region: 'us-east-1' }
const log = (line: string) => process.stderr.write(`${line}\n`)

async function main(): Promise<void> {
  pinSelf()
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-profile-'))
  onInterrupt(() => rm(dir, { recursive: true, force: true }))
  const s3 = await startS3rverProcess()
  const client = s3Client(s3.url)
  try {
    const cold = workload.startsWith('cold')
    await uploadStream(client, s3.bucket, 'obj/4k', randomChunks(4 * KiB))
    await uploadStream(client, s3.bucket, 'obj/1m', randomChunks(MiB))
    const diskKeys = Array.from({ length: 64 }, (_, i) => `disk/1m-${i}`)
    if (workload === 'disk-1m') for (const key of diskKeys) await copyObject(client, s3.bucket, 'obj/1m', key)
    if (cold) await uploadStream(client, s3.bucket, 'cold/256m', randomChunks(256 * MiB))
    const keys = generateKeyPair()
    const store = { type: 's3', bucket: s3.bucket, endpoint: s3.url, allow_http: true, access_key: S3RVER_ACCESS_KEY, secret_key: S3RVER_SECRET_KEY }
    // cold-stream: over max_object_size and no pages (pass-through); cold-fill: cached whole;
    // disk-1m: the disk gateway of `npm run bench` (64 objects cycled through 4 MiB of memory).
    const caches: Partial<Record<WorkloadId, Record<string, unknown>>> = {
      'cold-stream': { max_memory: '64MiB', max_object_size: '16MiB', page_size: 0 },
      'disk-1m': { max_memory: '4MiB', max_object_size: '2MiB', page_size: 0, max_disk: '1GiB', disk_path: path.join(dir, 'disk-cache') },
    }
    const cache = caches[workload] ?? { max_memory: '3GiB', max_object_size: '512MiB' }
    const profDir = path.join(dir, 'prof')
    const gw = await startGateway('gateway-profiled', path.join(dir, 'gw'), { listen: '127.0.0.1:0', auth: { public_key: keys.public_key, bearer_token: BEARER }, cache, log: { level: 'info' }, stores: { bench: store }, ...(workload === 's3-4k' && { s3_api: { region: S3_KEYS.region, credentials: [{ access_key_id: S3_KEYS.accessKey, secret_access_key: S3_KEYS.secretKey, buckets: ['bench'] }] } }) }, [
      '--cpu-prof',
      '--cpu-prof-dir',
      profDir,
    ], flags.root ? path.resolve(flags.root) : undefined)
    log(`profile: gateway ${gw.url}, workload ${workload}`)
    if (cold) {
      const reps = Math.max(3, Math.round(seconds / 2))
      for (let i = 0; i < reps; i++) {
        const key = `cold/256m-${i}`
        await copyObject(client, s3.bucket, 'cold/256m', key)
        const got = await timedGet(`${gw.url}/bench/${key}`, bearer)
        log(`  GET ${i + 1}/${reps}: TTFB ${got.ttfbMs.toFixed(1)} ms, total ${got.totalMs.toFixed(0)} ms`)
      }
    } else {
      const key = workload === 'hit-1m' ? 'obj/1m' : 'obj/4k'
      let request = { paths: [`/bench/${key}`], headers: bearer as Record<string, string> }
      if (workload === 'disk-1m') {
        request = { paths: diskKeys.map((k) => `/bench/${k}`), headers: bearer }
        for (const p of request.paths) await probe(`${gw.url}${p}`, bearer)
      }
      if (workload === 'presigned-4k') {
        const paths = Array.from({ length: 20_000 }, (_, i) => {
          const url = new URL(presign({ baseUrl: gw.url, bucket: 'bench', path: key, expiresIn: 86_400 + i, privateKey: keys.private_key }))
          return url.pathname + url.search
        })
        request = { paths, headers: {} }
      }
      // One header set, signed now: every request is a full SigV4 check (15-minute skew: keep --seconds short).
      if (workload === 's3-4k') request = { paths: [`/bench/${key}`], headers: signedGetHeaders(`${gw.url}/bench/${key}`, S3_KEYS) }
      await probe(`${gw.url}/bench/${key}`, bearer)
      if (workload === 's3-4k') {
        const checked = await probe(`${gw.url}/bench/${key}`, request.headers)
        if (checked.status !== 200) throw new Error(`s3-4k: the signed GET got ${checked.status}`)
      }
      const result = await runWrk({ url: gw.url, request, dynamic: request.paths.length > 1, connections: 32, durationSeconds: seconds, scriptDir: dir })
      log(`  wrk: ${Math.round(result.rps)} req/s, p99 ${result.p99Ms.toFixed(1)} ms, ${result.errors} errors`)
    }
    await gw.child.stop(30_000)
    const file = (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile'))
    if (!file) throw new Error('the gateway wrote no .cpuprofile (did it exit cleanly?)')
    const keep = path.join(tmpdir(), 'cachegate-profiles')
    await mkdir(keep, { recursive: true })
    const kept = path.join(keep, `${workload}-${Date.now()}.cpuprofile`)
    await copyFile(path.join(profDir, file), kept)
    process.stdout.write(`## CPU profile: ${workload}\n\n${formatSummary(await readProfile(kept), Number(flags.top))}\n\nProfile file: ${kept}\n`)
  } finally {
    client.destroy()
    await stopAll()
    await rm(dir, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  if (isInterrupted()) return
  process.stderr.write(`profile: ${(error as Error).stack ?? String(error)}\n`)
  process.exitCode = 1
})
