/**
 * Cold paths: a 256 MiB miss through the gateway vs the same GET straight to s3rver, and
 * 50 concurrent cold GETs of one key with the upstream requests counted.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY } from '../../test/helpers/emulators.ts'
import { BEARER, type BenchEnv, COLD_KEY, COLD_SIZE, HOT, HOT_SIZES } from './env.ts'
import { type TimedGet, burst, timedGet } from './http.ts'
import { copyObject } from './objects.ts'
import type { GatewayServer } from './servers.ts'
import { signedGetHeaders } from './sigv4.ts'

/** One way of fetching the cold object; `gateway` ones must answer `X-CG-Status: hit=0`. */
export interface ColdVariant {
  id: 'direct' | 'proxy' | 'fill' | 'stream' | 'paged'
  label: string
}

export const COLD_VARIANTS: ColdVariant[] = [
  { id: 'direct', label: 'direct to s3rver (SigV4)' },
  { id: 'proxy', label: 'reference: bare node:http pipe proxy (bench/lib/raw-proxy.ts)' },
  { id: 'fill', label: 'gateway, whole-object fill (max_object_size 512 MiB)' },
  { id: 'stream', label: 'gateway defaults, 1st GET (over max_object_size: streamed through)' },
  { id: 'paged', label: 'gateway defaults, 2nd GET (16 MiB pages, none cached yet)' },
]

export type ColdRep = Record<ColdVariant['id'], TimedGet>

const bearer = { Authorization: `Bearer ${BEARER}` }

/** A direct, SigV4-signed GET of `key` from s3rver (headers signed before the clock starts). */
export function directGet(env: { s3: { url: string; bucket: string } }, key: string): Promise<TimedGet> {
  const url = `${env.s3.url}/${env.s3.bucket}/${key}`
  return timedGet(url, signedGetHeaders(url, { accessKey: S3RVER_ACCESS_KEY, secretKey: S3RVER_SECRET_KEY }))
}

/**
 * Waits until no gateway has a fill in flight (the fill gateway copies 256 MiB into its
 * cache after the response ends), then a little more: every server shares one core, and a
 * measurement must not pay for the previous one's clean-up (GC, cache insert).
 */
export async function settle(gateways: GatewayServer[]): Promise<void> {
  const deadline = Date.now() + 15_000
  for (const gw of gateways) {
    while ((await gw.stats()).cache.inflight_fills > 0 && Date.now() < deadline) await sleep(50)
  }
  await sleep(300)
}

function gatewayGet(base: string, key: string): Promise<TimedGet> {
  return timedGet(`${base}/bench/${key}`, bearer)
}

/**
 * Each repetition reads a fresh server-side copy of the 256 MiB object, so every gateway
 * GET is a real miss: straight from s3rver, twice through a gateway with the default
 * settings (first GET: size unknown, streamed through; second: size known, read in 16 MiB
 * pages that are cached as they arrive), and through the gateway that caches it whole. Even
 * repetitions start with the direct GET, odd ones end with it. The copy was just written,
 * so s3rver reads it from the page cache every time.
 */
export async function coldMiss(env: BenchEnv, reps: number, log: (line: string) => void): Promise<ColdRep[]> {
  const out: ColdRep[] = []
  const tag = Date.now().toString(36)
  // Repetition 0 is an unrecorded warm-up of every path (JIT, connection pools): the first
  // GET of a process is several times slower than the next ones, on every side.
  for (let i = -1; i < reps; i++) {
    const key = `${COLD_KEY}-${tag}-${i < 0 ? 'warm-up' : i}`
    await copyObject(env.client, env.s3.bucket, COLD_KEY, key)
    const rep: Partial<ColdRep> = {}
    const gateways = [env.gateway, env.gatewayDefaults]
    const direct = async () => {
      await settle(gateways)
      rep.direct = await directGet(env, key)
    }
    if (i % 2 !== 1) await direct()
    await settle(gateways)
    rep.proxy = await timedGet(`${env.rawProxy.url}/${env.s3.bucket}/${key}`)
    await settle(gateways)
    rep.stream = await gatewayGet(env.gatewayDefaults.url, key)
    await settle(gateways)
    rep.paged = await gatewayGet(env.gatewayDefaults.url, key)
    // The whole-object fill goes last: it leaves 256 MiB of freshly faulted memory behind,
    // which slowed the next transfer on the machine in some runs.
    await settle(gateways)
    rep.fill = await gatewayGet(env.gateway.url, key)
    if (i % 2 === 1) await direct()
    for (const variant of COLD_VARIANTS) {
      const got = rep[variant.id]!
      if (variant.id !== 'direct' && variant.id !== 'proxy' && got.headers['x-cg-status'] !== 'hit=0') throw new Error(`${variant.label}: not a miss`)
      if (got.status !== 200 || got.bytes !== COLD_SIZE) throw new Error(`${variant.label}: status ${got.status}, ${got.bytes} of ${COLD_SIZE} bytes`)
    }
    if (i < 0) continue
    log(`  rep ${i + 1}: ${COLD_VARIANTS.map((v) => `${v.id} TTFB ${rep[v.id]!.ttfbMs.toFixed(1)} ms / total ${rep[v.id]!.totalMs.toFixed(0)} ms`).join('; ')}`)
    out.push(rep as ColdRep)
  }
  return out
}

export interface CoalesceRound {
  round: number
  server: 'gateway' | 'nginx'
  upstreamGets: number
  upstreamRequests: number
  ok: number
  maxTotalMs: number
}

/** 50 GETs at once of a fresh 16 MiB key, through the counting proxy; for the gateway and nginx. */
export async function coalesce(env: BenchEnv, rounds: number, clients: number, log: (line: string) => void): Promise<CoalesceRound[]> {
  const out: CoalesceRound[] = []
  const size = HOT_SIZES[HOT['16m']]!
  const tag = Date.now().toString(36)
  for (let round = 0; round < rounds; round++) {
    const servers: { server: CoalesceRound['server']; url: (key: string) => string; headers: Record<string, string> }[] = [
      { server: 'gateway', url: (key) => `${env.gateway.url}/counted/${key}`, headers: bearer },
    ]
    if (env.nginx) servers.push({ server: 'nginx', url: (key) => `${env.nginx!.url}/counted/${env.s3.bucket}/${key}`, headers: {} })
    for (const { server, url, headers } of servers) {
      const key = `coalesce/${tag}-${round}-${server}`
      await copyObject(env.client, env.s3.bucket, HOT['16m'], key)
      env.proxy.reset()
      const results = await burst(url(key), clients, headers)
      const ok = results.filter((r) => r.status === 200 && r.bytes === size).length
      const row: CoalesceRound = {
        round: round + 1,
        server,
        upstreamGets: env.proxy.counts.byMethod.GET ?? 0,
        upstreamRequests: env.proxy.counts.requests,
        ok,
        maxTotalMs: Math.max(...results.map((r) => r.totalMs)),
      }
      log(`  round ${round + 1} ${server}: ${row.upstreamGets} upstream GET(s) (${row.upstreamRequests} requests), ${ok}/${clients} complete, slowest ${row.maxTotalMs.toFixed(0)} ms`)
      out.push(row)
    }
  }
  return out
}
