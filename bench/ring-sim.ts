/**
 * `npm run bench:ring`: how evenly nginx's `hash $uri consistent` spreads keys over N
 * gateways, and how many keys move when one leaves, from the exact ring of
 * bench/lib/nginx-ring.ts (test/fleet.test.ts checks it against nginx itself). CPU only,
 * a few seconds. Servers are named as the shipped deploy/k8s StatefulSet's pods and as
 * deploy/systemd's one-process-per-core ports.
 *
 *   node bench/ring-sim.ts [--keys 200000] [--nodes 3,16,64]
 */
import { parseArgs } from 'node:util'
import { buildRing, ownerOf } from './lib/nginx-ring.ts'

const { values } = parseArgs({ options: { keys: { type: 'string', default: '200000' }, nodes: { type: 'string', default: '3,16,64' } } })
const KEYS = Number(values.keys)
const SIZES = values.nodes.split(',').map(Number)

/** Server names as the shipped deployments write them: k8s pod DNS names, or one host's ports (systemd). */
const SCHEMES: Record<string, (n: number) => string[]> = {
  'k8s pod names': (n) => Array.from({ length: n }, (_, i) => `cachegate-${i}.cachegate.default.svc.cluster.local:8080`),
  '127.0.0.1:8081..': (n) => Array.from({ length: n }, (_, i) => `127.0.0.1:${8081 + i}`),
}
/** $uri of object keys as a media bucket holds them. */
const keys = Array.from({ length: KEYS }, (_, i) => `/media/photos/${(i * 2654435761) % 1000003}/${i}.jpg`)

const fmt = (x: number, digits = 3) => x.toFixed(digits)

console.log(`nginx hash $uri consistent: ${KEYS.toLocaleString('en')} keys, 160 points per server`)
console.log('| servers | N | keys/node mean | max/mean | min/mean | stddev/mean | moved when one leaves (mean over leavers) | ideal 1/N | worst leaver | keys of others moved |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const [scheme, servers] of Object.entries(SCHEMES)) for (const n of SIZES) {
  const names = servers(n)
  const ring = buildRing(names)
  const owner = keys.map((k) => ownerOf(ring, k)!)
  const counts = new Map(names.map((s) => [s, 0]))
  for (const o of owner) counts.set(o, counts.get(o)! + 1)
  const load = [...counts.values()]
  const mean = KEYS / n
  const sd = Math.sqrt(load.reduce((a, c) => a + (c - mean) ** 2, 0) / n)
  // One node leaves: the ring without it (the same as nginx skipping it while it is down).
  const leavers = n <= 16 ? names : names.slice(0, 16)
  let movedSum = 0
  let worst = 0
  let strayed = 0
  for (const leaver of leavers) {
    const smaller = buildRing(names.filter((s) => s !== leaver))
    let moved = 0
    keys.forEach((k, i) => {
      const now = ownerOf(smaller, k)
      if (now !== owner[i]) {
        moved++
        if (owner[i] !== leaver) strayed++
        // nginx skipping a down server must agree with the ring rebuilt without it.
        if (now !== ownerOf(ring, k, new Set([leaver]))) throw new Error(`skip and rebuild disagree for ${k}`)
      }
    })
    movedSum += moved
    worst = Math.max(worst, moved)
  }
  console.log(
    `| ${scheme} | ${n} | ${Math.round(mean)} | ${fmt(Math.max(...load) / mean)} | ${fmt(Math.min(...load) / mean)} | ${fmt(sd / mean)} | ${fmt(movedSum / leavers.length / KEYS)} | ${fmt(1 / n)} | ${fmt(worst / KEYS)} | ${strayed} |`,
  )
}
