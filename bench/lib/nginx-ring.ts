/**
 * nginx's `hash $key consistent` ring, reproduced exactly from
 * src/http/modules/ngx_http_upstream_hash_module.c (ngx_http_upstream_update_chash,
 * ngx_http_upstream_find_chash_point, ngx_http_upstream_get_chash_peer), so that key
 * placement can be predicted and simulated without nginx:
 *
 * - each server gets `weight × 160` points; point j is crc32(HOST "\0" PORT PREV), where HOST
 *   and PORT are the `server` text as written in the config, split at its last `:` when
 *   only digits follow (a `unix:` path is all HOST), and PREV is point j-1's hash as 4
 *   little-endian bytes (0 for the first);
 * - the points are sorted, and points with an equal hash collapse into one;
 * - a key goes to the first point whose hash is >= crc32(key), wrapping around;
 * - a server that is down or failed (max_fails) is skipped by moving to the next point,
 *   20 points at most (then nginx falls back to round robin, which this model does not).
 */
import { crc32 } from 'node:zlib'

export interface RingServer {
  /** The `server` directive's address as written, e.g. `10.0.0.5:8080` or `cachegate-0.cachegate:8080`. */
  name: string
  weight?: number
}

export interface Ring {
  /** Sorted point hashes. */
  hashes: Uint32Array
  /** The server (index into `servers`) of each point. */
  owners: Uint16Array
  servers: string[]
}

const POINTS_PER_WEIGHT = 160
const MAX_TRIES = 20

function hostAndPort(server: string): [string, string] {
  if (server.length >= 5 && server.slice(0, 5).toLowerCase() === 'unix:') return [server.slice(5), '']
  // Scan back over digits; a ':' before them splits host and port.
  for (let j = server.length - 1; j >= 0; j--) {
    const c = server[j]!
    if (c === ':') return [server.slice(0, j), server.slice(j + 1)]
    if (c < '0' || c > '9') break
  }
  return [server, '']
}

export function buildRing(servers: readonly (RingServer | string)[]): Ring {
  const list = servers.map((s) => (typeof s === 'string' ? { name: s, weight: 1 } : { weight: 1, ...s }))
  const points: { hash: number; owner: number }[] = []
  list.forEach((server, owner) => {
    const [host, port] = hostAndPort(server.name)
    const base = Buffer.concat([Buffer.from(host), Buffer.from([0]), Buffer.from(port)])
    const prev = Buffer.alloc(4)
    for (let j = 0; j < server.weight! * POINTS_PER_WEIGHT; j++) {
      const hash = crc32(Buffer.concat([base, prev]))
      points.push({ hash, owner })
      prev.writeUInt32LE(hash)
    }
  })
  // nginx's qsort is not stable: which of two equal points survives is unspecified there
  // (a collision among a few thousand 32-bit hashes is rare); here the first server wins.
  points.sort((a, b) => a.hash - b.hash || a.owner - b.owner)
  const unique = points.filter((p, i) => i === 0 || p.hash !== points[i - 1]!.hash)
  return {
    hashes: Uint32Array.from(unique, (p) => p.hash),
    owners: Uint16Array.from(unique, (p) => p.owner),
    servers: list.map((s) => s.name),
  }
}

/** Index of the first point >= hash (may be `hashes.length`: nginx then takes it modulo). */
function firstPoint(hashes: Uint32Array, hash: number): number {
  let i = 0
  let j = hashes.length
  while (i < j) {
    const k = (i + j) >>> 1
    if (hash > hashes[k]!) i = k + 1
    else if (hash < hashes[k]!) j = k
    else return k
  }
  return i
}

/**
 * The server nginx picks for `key` (the evaluated hash key, e.g. `$uri`), skipping the
 * servers in `unavailable` (down, failed, or already tried for this request); undefined
 * when nginx would give up on the ring (all unavailable within 20 points).
 */
export function ownerOf(ring: Ring, key: string | Buffer, unavailable: ReadonlySet<string> = new Set()): string | undefined {
  if (ring.hashes.length === 0) return undefined
  let point = firstPoint(ring.hashes, crc32(key))
  for (let tries = 0; tries <= MAX_TRIES; tries++, point++) {
    const server = ring.servers[ring.owners[point % ring.hashes.length]!]!
    if (!unavailable.has(server)) return server
  }
  return undefined
}
