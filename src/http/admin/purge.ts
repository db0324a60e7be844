/**
 * `POST /_admin/purge`: `{"bucket": "...", "path": "..."}` or `{"bucket": "...", "prefix": "..."}`
 * (an empty prefix only with `"all": true`), answered with how many entries were dropped.
 * Plain node:http, like the object routes: the body is read up to `MAX_BODY_BYTES`, then refused.
 */
import type { IncomingMessage } from 'node:http'
import { BadRequestError, PayloadTooLargeError } from '../../errors.ts'
import type { Logger } from '../../log.ts'
import type { ObjectService } from '../../objects/index.ts'
import { MAX_KEY_BYTES, validateKey } from '../../stores/key.ts'
import type { AdminIdentity } from './auth.ts'

/** A purge request is a few hundred bytes; anything past this is refused with 413. */
export const MAX_BODY_BYTES = 64 * 1024

export type PurgeTarget = { bucket: string; path: string } | { bucket: string; prefix: string }

/** Reads the body, bounded: a larger one is refused before it is all read. */
export async function readBoundedBody(incoming: IncomingMessage, max = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(incoming.headers['content-length'])
  if (Number.isFinite(declared) && declared > max) throw new PayloadTooLargeError(max, `request body exceeds ${max} bytes`)
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of incoming) {
    bytes += (chunk as Buffer).byteLength
    if (bytes > max) throw new PayloadTooLargeError(max, `request body exceeds ${max} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

/** The purge a body asks for, or a `BadRequestError` saying what is wrong with it. */
export function parsePurgeBody(body: Buffer, buckets: ReadonlySet<string>): PurgeTarget {
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    throw new BadRequestError('body is not JSON (expected {"bucket": "...", "path": "..."} or {"bucket": "...", "prefix": "..."})')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadRequestError('body must be a JSON object')
  const { bucket, path, prefix, all, ...rest } = value as Record<string, unknown>
  const unknown = Object.keys(rest)
  if (unknown.length > 0) throw new BadRequestError(`unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}`)
  if (typeof bucket !== 'string' || bucket === '') throw new BadRequestError('"bucket" must be a non-empty string')
  if (!buckets.has(bucket)) throw new BadRequestError(`unknown bucket "${bucket}"`)
  if (all !== undefined && typeof all !== 'boolean') throw new BadRequestError('"all" must be true or false')
  if ((path === undefined) === (prefix === undefined)) throw new BadRequestError('give exactly one of "path" and "prefix"')
  if (path !== undefined) {
    if (typeof path !== 'string' || path === '') throw new BadRequestError('"path" must be a non-empty string')
    checkKey(path, 'path')
    return { bucket, path }
  }
  if (typeof prefix !== 'string') throw new BadRequestError('"prefix" must be a string')
  if (prefix === '' && all !== true) throw new BadRequestError('an empty "prefix" purges the whole bucket: send "all": true as well')
  // A prefix may end mid-segment or with "/": only what no key may hold is refused.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(prefix) || Buffer.byteLength(prefix) > MAX_KEY_BYTES) throw new BadRequestError('"prefix" holds a control character or is too long')
  return { bucket, prefix }
}

/** Keys hold no NUL (the cache key separator) and follow the object-key rules. */
function checkKey(key: string, field: string): void {
  try {
    validateKey(key)
  } catch (error) {
    throw new BadRequestError(`"${field}" is not a valid object key: ${(error as Error).message}`)
  }
}

export interface PurgeHandlerDeps {
  objects: ObjectService
  buckets: ReadonlySet<string>
  logger: Logger
}

export function createPurgeHandler(deps: PurgeHandlerDeps) {
  return async function purgeHandler(incoming: IncomingMessage, admin: AdminIdentity): Promise<{ status: number; body: unknown }> {
    const target = parsePurgeBody(await readBoundedBody(incoming), deps.buckets)
    const what = 'path' in target ? { path: target.path } : { prefix: target.prefix }
    admin.check(target.bucket, what.path ?? what.prefix)
    const dropped = await deps.objects.purge(target.bucket, what)
    deps.logger.info('purged', { admin: admin.id, bucket: target.bucket, ...what, dropped })
    return { status: 200, body: { bucket: target.bucket, ...what, dropped } }
  }
}
