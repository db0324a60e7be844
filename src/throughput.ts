/**
 * Egress and ingress bytes per second over the last 10 s for `/stats` (Cachey's signal for
 * client-side balancing). Nothing is counted per request: each connection's `bytesWritten`
 * and `bytesRead` (what Node already keeps) are read once a second and when it closes, and
 * the deltas go into a ring of ten one-second buckets.
 */
import type { Server } from 'node:net'
import type { Socket } from 'node:net'

/** Seconds the rates are averaged over. */
export const THROUGHPUT_WINDOW_SECONDS = 10

export interface ThroughputRates {
  egress_bytes_per_second: number
  ingress_bytes_per_second: number
  window_seconds: number
}

/** Ten one-second buckets; the rate is the sum of the last ten complete seconds over ten. */
export class ThroughputMeter {
  readonly #egress = new Float64Array(THROUGHPUT_WINDOW_SECONDS)
  readonly #ingress = new Float64Array(THROUGHPUT_WINDOW_SECONDS)
  /** The second (since the epoch) each bucket holds; -1: none. */
  readonly #second = new Float64Array(THROUGHPUT_WINDOW_SECONDS).fill(-1)
  readonly #now: () => number

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now
  }

  add(egress: number, ingress: number): void {
    if (egress === 0 && ingress === 0) return
    const second = Math.floor(this.#now() / 1000)
    const i = second % THROUGHPUT_WINDOW_SECONDS
    if (this.#second[i] !== second) {
      this.#second[i] = second
      this.#egress[i] = 0
      this.#ingress[i] = 0
    }
    this.#egress[i]! += egress
    this.#ingress[i]! += ingress
  }

  /** Averages over the ten seconds before the current (incomplete) one. */
  rates(): ThroughputRates {
    const current = Math.floor(this.#now() / 1000)
    let egress = 0
    let ingress = 0
    for (let i = 0; i < THROUGHPUT_WINDOW_SECONDS; i++) {
      const second = this.#second[i]!
      if (second >= current - THROUGHPUT_WINDOW_SECONDS && second < current) {
        egress += this.#egress[i]!
        ingress += this.#ingress[i]!
      }
    }
    return { egress_bytes_per_second: Math.round(egress / THROUGHPUT_WINDOW_SECONDS), ingress_bytes_per_second: Math.round(ingress / THROUGHPUT_WINDOW_SECONDS), window_seconds: THROUGHPUT_WINDOW_SECONDS }
  }
}

/** What was already counted of one connection. */
interface Counted {
  written: number
  read: number
}

/**
 * Counts the bytes of every connection `server` accepts (on the wire: for HTTPS, the TCP
 * socket under TLS). `sample()` runs every `intervalMs` on an unref'd timer.
 *
 * @example
 * const traffic = trackThroughput(server)
 * traffic.meter.rates() // { egress_bytes_per_second, ingress_bytes_per_second, window_seconds: 10 }
 * traffic.stop()        // on shutdown
 */
export function trackThroughput(server: Server, options: { now?: () => number; intervalMs?: number } = {}) {
  const meter = new ThroughputMeter({ now: options.now })
  const open = new Map<Socket, Counted>()
  const count = (socket: Socket, counted: Counted) => {
    const written = socket.bytesWritten
    const read = socket.bytesRead
    meter.add(written - counted.written, read - counted.read)
    counted.written = written
    counted.read = read
  }
  server.on('connection', (socket: Socket) => {
    const counted = { written: 0, read: 0 }
    open.set(socket, counted)
    socket.once('close', () => {
      count(socket, counted)
      open.delete(socket)
    })
  })
  const sample = () => {
    for (const [socket, counted] of open) count(socket, counted)
  }
  const timer = options.intervalMs === 0 ? undefined : setInterval(sample, options.intervalMs ?? 1000)
  timer?.unref()
  return { meter, sample, stop: () => clearInterval(timer) }
}
