import { LRUCache } from 'lru-cache'

/** Client addresses whose buckets are kept; the least recently failing ones are dropped first. */
const CLIENTS = 10_000

export interface FailureLimiterOptions {
  /** Tokens added back per second (sustained failures allowed). */
  perSecond: number
  /** Bucket size: failures allowed in a burst. */
  burst: number
  /** Buckets kept (bounded memory); default 10,000. */
  maxClients?: number
  /** Current time in ms, monotonic (injectable for tests). */
  now?: () => number
}

interface Bucket {
  tokens: number
  /** When `tokens` was last computed (ms, on the limiter's clock). */
  at: number
}

/**
 * A token bucket per client on **failed** authentications. Only failures take tokens, so a
 * client that authenticates never gets a bucket; one whose bucket is empty is refused before
 * its next signature is verified, which is the expensive step (an Ed25519 verification per
 * configured key) that a flood of bad links makes the gateway repeat.
 *
 * @example
 * const limiter = new FailureLimiter({ perSecond: 20, burst: 100 })
 * const wait = limiter.retryAfter(clientKey(socket.remoteAddress)) // 0: go ahead
 * limiter.fail(clientKey(socket.remoteAddress)) // after a failed check
 */
export class FailureLimiter {
  readonly #perMs: number
  readonly #burst: number
  readonly #now: () => number
  readonly #buckets: LRUCache<string, Bucket>

  constructor(options: FailureLimiterOptions) {
    const { perSecond, burst, maxClients = CLIENTS } = options
    if (!(Number.isFinite(perSecond) && perSecond > 0)) throw new TypeError('perSecond must be a positive number')
    if (!(Number.isSafeInteger(burst) && burst >= 1)) throw new TypeError('burst must be a positive integer')
    if (!(Number.isSafeInteger(maxClients) && maxClients >= 1)) throw new TypeError('maxClients must be a positive integer')
    this.#perMs = perSecond / 1000
    this.#burst = burst
    this.#now = options.now ?? (() => performance.now())
    this.#buckets = new LRUCache({ max: maxClients })
  }

  #level(bucket: Bucket, at: number): number {
    return Math.min(this.#burst, bucket.tokens + Math.max(0, at - bucket.at) * this.#perMs)
  }

  /** Whole seconds until `client` may be checked again; 0 while it has a token. Creates no bucket. */
  retryAfter(client: string): number {
    const bucket = this.#buckets.get(client)
    if (!bucket) return 0
    const tokens = this.#level(bucket, this.#now())
    return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.#perMs / 1000))
  }

  /** Takes a token for a failed authentication; true when that emptied the bucket (log it once). */
  fail(client: string): boolean {
    const at = this.#now()
    const bucket = this.#buckets.get(client)
    const before = bucket ? this.#level(bucket, at) : this.#burst
    const tokens = Math.max(0, before - 1)
    if (bucket) {
      bucket.tokens = tokens
      bucket.at = at
    } else {
      this.#buckets.set(client, { tokens, at })
    }
    return before >= 1 && tokens < 1
  }

  /** Buckets held (at most `maxClients`). */
  get size(): number {
    return this.#buckets.size
  }
}

/**
 * The key a client's failures are counted under: its IPv4 address (IPv4-mapped IPv6
 * unwrapped), or for IPv6 its /64 prefix, since one subscriber usually holds a whole /64
 * (RFC 6177) and could otherwise take a fresh bucket for every request.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown'
  if (!address.includes(':')) return address
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address)) return address.slice(7)
  const bare = address.split('%')[0]!
  const [head = '', tail] = bare.split('::')
  const groups = (part: string) => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])))
  const left = groups(head)
  const right = tail === undefined ? [] : groups(tail)
  const all = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  return `${all
    .slice(0, 4)
    .map((g) => (Number.parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`
}
