/**
 * The benchmark environment: s3rver with the objects, the counting proxy, two gateways
 * (memory tier; disk tier when the gateway has one), the raw node:http ceilings and nginx.
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { generateKeyPair } from '../../src/auth/keys.ts'
import { type CountingProxy, startCountingProxy } from '../../test/helpers/counting-proxy.ts'
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY } from '../../test/helpers/emulators.ts'
import { MiB, KiB, s3Client, uploadFile, writeRandomFile } from './objects.ts'
import { onInterrupt, pinSelf, stopAll } from './procs.ts'
import {
  type GatewayServer,
  type S3rverServer,
  type Server,
  nginxVersion,
  startGateway,
  startNginx,
  startRawProxy,
  startRawServer,
  startS3rverProcess,
  which,
} from './servers.ts'

export const BEARER = 'bench-bearer-token-0123456789abcdef'
/** Objects every server holds (raw servers from files, the others through s3rver). */
export const HOT = { '4k': 'obj/4k', '1m': 'obj/1m', '16m': 'obj/16m' } as const
export const HOT_SIZES: Record<string, number> = { 'obj/4k': 4 * KiB, 'obj/1m': MiB, 'obj/16m': 16 * MiB }
/** The disk-hit working set: many 1 MiB objects, far more than the disk gateway's memory tier. */
export const DISK_KEYS = Array.from({ length: 64 }, (_, i) => `disk/1m-${String(i).padStart(2, '0')}`)
/** The disk gateway's memory tier: room for ~3 of the 64 objects, so nearly every hit is a disk hit. */
export const DISK_GATEWAY_MEMORY = 4 * MiB
export const COLD_SIZE = 256 * MiB
export const COLD_KEY = 'cold/256m'

export interface BenchEnv {
  dir: string
  s3: S3rverServer
  client: ReturnType<typeof s3Client>
  proxy: CountingProxy
  keys: ReturnType<typeof generateKeyPair>
  /** Memory tier, big enough to hold every object whole (hits, cacheable cold fill). */
  gateway: GatewayServer
  /** The default cache settings (max_object_size 64 MiB, 16 MiB pages): large objects stream or page. */
  gatewayDefaults: GatewayServer
  /**
   * `gateway` with `revalidate_after: 7d`: every hit runs the freshness check, none is ever
   * stale (issue 13's "the check costs under 5% of a hit"). Only with `startEnv({ revalidate })`.
   */
  gatewayReval?: GatewayServer
  /**
   * `gateway`'s config run from another checkout (`--baseline-root`): this code against the
   * code before it, side by side in one run. Only with `startEnv({ baselineRoot })`.
   */
  gatewayBase?: GatewayServer
  /** Undefined when the gateway has no disk tier (yet); `diskNote` says why. */
  gatewayDisk?: GatewayServer
  diskNote: string
  rawBuffer: Server
  rawStream1m: Server
  rawStream64k: Server
  /** A bare node:http pipe proxy in front of s3rver (cold-miss reference). */
  rawProxy: Server
  nginx?: Server
  nginxNote: string
  nginxVersion?: string
  close(): Promise<void>
}

/** nginx and wrk from Debian; as root we install them, otherwise we print the command. */
export function ensureTools(): { nginx?: string } {
  const missing = ['wrk', 'nginx'].filter((tool) => !which(tool))
  if (missing.length > 0 && process.getuid?.() === 0) {
    process.stderr.write(`bench: installing ${missing.join(' ')} (apt-get)\n`)
    try {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' })
      execFileSync('apt-get', ['install', '-y', '-qq', 'nginx', 'wrk'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    } catch {
      process.stderr.write('bench: apt-get failed\n')
    }
  }
  if (!which('wrk')) throw new Error('wrk is required: apt-get update && apt-get install -y wrk nginx')
  const nginx = which('nginx')
  if (!nginx) process.stderr.write('bench: nginx not found (apt-get install -y nginx): nginx rows are skipped\n')
  return { nginx }
}

function gatewayConfig(s3: S3rverServer, proxy: CountingProxy, keys: { public_key: string }, cache: Record<string, unknown>) {
  const store = (endpoint: string) => ({ type: 's3', bucket: s3.bucket, endpoint, allow_http: true, access_key: S3RVER_ACCESS_KEY, secret_key: S3RVER_SECRET_KEY })
  return {
    listen: '127.0.0.1:0',
    auth: { public_key: keys.public_key, bearer_token: BEARER },
    cache,
    log: { level: 'info' },
    // `bench` reads s3rver directly; `counted` goes through the counting proxy.
    stores: { bench: store(s3.url), counted: store(proxy.url) },
  }
}

/** `root`: run the gateways from another checkout (to measure a patch); default this one. */
export async function startEnv(options: { cold: boolean; root?: string; revalidate?: boolean; baselineRoot?: string }): Promise<BenchEnv> {
  pinSelf()
  const tools = ensureTools()
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-bench-'))
  onInterrupt(() => rm(dir, { recursive: true, force: true }))
  const partial: Partial<BenchEnv> = { dir }
  let proxy: CountingProxy | undefined
  const close = async () => {
    await stopAll()
    await proxy?.close().catch(() => {})
    partial.client?.destroy()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const s3 = await startS3rverProcess()
    const client = s3Client(s3.url)
    partial.client = client
    process.stderr.write('bench: writing and uploading objects\n')
    const raw = path.join(dir, 'raw')
    for (const key of [...Object.values(HOT), ...DISK_KEYS]) {
      const size = HOT_SIZES[key] ?? MiB
      await writeRandomFile(path.join(raw, key), size)
      await uploadFile(client, s3.bucket, key, path.join(raw, key), size)
    }
    if (options.cold) {
      const big = path.join(dir, 'big/256m')
      await writeRandomFile(big, COLD_SIZE)
      await uploadFile(client, s3.bucket, COLD_KEY, big, COLD_SIZE)
      await rm(big)
    }
    proxy = await startCountingProxy(s3.url)
    const keys = generateKeyPair()
    // Big enough for every hot object and the cold 256 MiB copies, so nothing is evicted.
    const gateway = await startGateway('gateway', path.join(dir, 'gateway'), gatewayConfig(s3, proxy, keys, { max_memory: '3GiB', max_object_size: '512MiB' }), [], options.root)
    const gatewayReval = options.revalidate
      ? await startGateway('gateway-reval', path.join(dir, 'gateway-reval'), gatewayConfig(s3, proxy, keys, { max_memory: '3GiB', max_object_size: '512MiB', revalidate_after: '7d' }), [], options.root)
      : undefined
    const gatewayBase = options.baselineRoot
      ? await startGateway('gateway-base', path.join(dir, 'gateway-base'), gatewayConfig(s3, proxy, keys, { max_memory: '3GiB', max_object_size: '512MiB' }), [], options.baselineRoot)
      : undefined
    const gatewayDefaults = await startGateway('gateway-defaults', path.join(dir, 'gateway-defaults'), gatewayConfig(s3, proxy, keys, {}), [], options.root)
    let gatewayDisk: GatewayServer | undefined
    let diskNote = ''
    try {
      const diskCache = { max_memory: DISK_GATEWAY_MEMORY, max_object_size: 2 * MiB, page_size: 0, max_disk: '1GiB', disk_path: path.join(dir, 'gateway-disk/cache') }
      const diskConfig = gatewayConfig(s3, proxy, keys, diskCache)
      gatewayDisk = await startGateway('gateway-disk', path.join(dir, 'gateway-disk'), diskConfig, [], options.root)
      const tiers = (await gatewayDisk.stats()).cache.tiers
      if (!tiers.disk) {
        diskNote = `disk tier not available: the gateway's /stats reports tiers ${JSON.stringify(Object.keys(tiers))}, no cache.tiers.disk`
        await gatewayDisk.child.stop()
        gatewayDisk = undefined
      }
    } catch (error) {
      // The gateway's own words (e.g. "cachegate: invalid config ...") follow "output:".
      const said = (error as Error).message.split('output:')[1]?.trim().split('\n').slice(0, 2).join(' ') || (error as Error).message
      diskNote = `disk tier not available: the disk-tier gateway did not start (${said})`
      gatewayDisk = undefined
    }
    const rawBuffer = await startRawServer('raw-buffer', 'buffer', raw)
    const rawStream1m = await startRawServer('raw-stream-1m', 'stream', raw, MiB)
    const rawStream64k = await startRawServer('raw-stream-64k', 'stream', raw)
    const rawProxy = await startRawProxy(s3.url)
    let nginx: Server | undefined
    let nginxNote = ''
    if (tools.nginx) {
      nginx = await startNginx({ binary: tools.nginx, dir: path.join(dir, 'nginx'), upstream: s3.url, countedUpstream: proxy.url })
    } else nginxNote = 'nginx not installed (apt-get install -y nginx)'
    return Object.assign(partial, {
      s3,
      client,
      proxy,
      keys,
      gateway,
      gatewayReval,
      gatewayBase,
      gatewayDefaults,
      gatewayDisk,
      diskNote,
      rawBuffer,
      rawStream1m,
      rawStream64k,
      rawProxy,
      nginx,
      nginxNote,
      nginxVersion: tools.nginx ? nginxVersion(tools.nginx) : undefined,
      close,
    }) as BenchEnv
  } catch (error) {
    await close()
    throw error
  }
}
