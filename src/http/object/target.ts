/**
 * The request-target of an object route: raw path and query as the client sent them, the
 * `/:bucket_id/*path` shape, and a bounded cache of paths already checked and decoded.
 */
import { InvalidKeyError } from '../../errors.ts'
import { decodeKey } from '../../stores/key.ts'

/** What an object request names: a configured store's id and an object key (decoded, validated). */
export interface ObjectTarget {
  readonly bucket: string
  readonly key: string
}

/** Splits the raw request-target (as the client sent it) into a still-encoded path and query. */
export function splitTarget(target: string): { path: string; query: string } {
  let start = 0
  if (!target.startsWith('/')) {
    // absolute-form (RFC 9112 §3.2.2): skip scheme and authority.
    const scheme = target.indexOf('://')
    start = scheme === -1 ? target.length : target.indexOf('/', scheme + 3)
    if (start === -1) start = target.length
  }
  const q = target.indexOf('?', start)
  return q === -1 ? { path: target.slice(start) || '/', query: '' } : { path: target.slice(start, q) || '/', query: target.slice(q + 1) }
}

const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i

/** True when any segment of the raw path is `.` or `..`, literally or percent-encoded. */
export function hasDotSegment(rawPath: string): boolean {
  return DOT_SEGMENT.test(rawPath)
}

/** `/:bucket_id/<anything>`: the object routes (the rest is Hono's). */
export function isObjectPath(rawPath: string): boolean {
  return rawPath.indexOf('/', 1) > 1
}

/**
 * Bucket and key of a raw object path (`isObjectPath` holds), validated before any store
 * call. Throws `InvalidKeyError` (400) for a dot segment (refused as the client sent it: a
 * URL parser would resolve it away), bad percent-encoding, or a key no store may hold.
 */
export function parseObjectPath(path: string): ObjectTarget {
  if (hasDotSegment(path)) throw new InvalidKeyError('dot segment in path')
  const slash = path.indexOf('/', 1)
  let bucket: string
  try {
    bucket = decodeURIComponent(path.slice(1, slash))
  } catch (error) {
    throw new InvalidKeyError('malformed percent-encoding in path', { cause: error })
  }
  return { bucket, key: decodeKey(path.slice(slash + 1)) }
}

/** Object paths already checked and decoded, so a hot object skips the work (bounded). */
const PARSED_PATHS = 10_000
/** Longer paths are parsed every time: the bound is on entries, this keeps it on bytes too. */
const PARSED_PATH_MAX_LENGTH = 256

/** A flat copy of `text` that shares no memory with the string it was sliced from. */
const detach = (text: string) => Buffer.from(text, 'utf8').toString('utf8')

/** A target that came out of the cache: remembering it again is a no-op without a lookup. */
class KnownTarget implements ObjectTarget {
  readonly bucket: string
  readonly key: string
  constructor(bucket: string, key: string) {
    this.bucket = bucket
    this.key = key
  }
}

/**
 * Raw path → target, for paths whose request was authenticated and named a configured
 * bucket (`remember` is called only then), so nobody can fill it without credentials.
 * Cleared when full: a hot path is back after one parse.
 */
export class ParsedPaths {
  readonly #targets = new Map<string, KnownTarget>()

  get(path: string): ObjectTarget | undefined {
    return this.#targets.get(path)
  }

  /** The strings are copied: a slice of the request line would keep the whole line (query included) alive. */
  remember(path: string, target: ObjectTarget): void {
    if (target instanceof KnownTarget || path.length > PARSED_PATH_MAX_LENGTH) return
    const own = detach(path)
    const bucket = detach(target.bucket)
    const key = detach(target.key)
    // A lone surrogate does not survive the round trip: such a path is parsed every time.
    if (own !== path || bucket !== target.bucket || key !== target.key) return
    if (this.#targets.size >= PARSED_PATHS) this.#targets.clear()
    this.#targets.set(own, new KnownTarget(bucket, key))
  }
}
