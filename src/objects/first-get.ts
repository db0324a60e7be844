/**
 * An object's first GET, shared by every request coalesced on it (read.ts runs it under the
 * fills singleflight), and what any full GET's answer becomes: a revalidation's 200 goes
 * through `settle` too.
 */
import type { Readable } from 'node:stream'
import { Fill } from '../cache/fill.ts'
import { SNIFF_BYTES, contentTypeFromKey, isGenericContentType, typeFromMagicBytes } from '../content-type.ts'
import { UpstreamError, asUpstreamError } from '../errors.ts'
import type { GetResult, ObjectMeta, Store } from '../stores/types.ts'
import type { ReadPathOptions } from './read.ts'

/** What the first GET of an object found, shared by every request coalesced on it. */
export type Outcome =
  | { kind: 'missing' }
  /** Cacheable: a fill every reader follows; `done` settles once it is cached (or failed). */
  | { kind: 'fill'; fill: Fill; done: Promise<void> }
  /** Too large to cache whole: the first reader takes the upstream body. */
  | { kind: 'too-large'; meta: ObjectMeta; take(): Readable | undefined }

/**
 * A stored object whose type says nothing (none, or octet-stream: what S3 and Azure assign
 * when the writer gave none) is typed like a PUT would type it: by the key's extension here,
 * by its magic bytes once they arrive (`sniffed`).
 */
export function typed(key: string, meta: ObjectMeta): ObjectMeta {
  if (!isGenericContentType(meta.contentType)) return meta
  return { ...meta, contentType: contentTypeFromKey(key) ?? meta.contentType }
}

/**
 * An object's first GET, shared by every request coalesced on it: a fill for a cacheable
 * object (typed by its magic bytes when the store gave it no useful type), else the body of
 * one too large to cache.
 */
export async function firstGet(at: FlightContext): Promise<Outcome> {
  // No client signal here: the fill belongs to the gateway, not to the first client.
  const got = await at.store.get(at.key)
  if (got) return settle(at, got)
  // Unless a PUT came meanwhile: then the 404 may be older than the object.
  if (at.isCurrent()) at.options.negative.remember(at.ck, at.options.policyFor(at.store.id).negativeTtl)
  return { kind: 'missing' }
}

export type FlightContext = { options: ReadPathOptions; ck: string; store: Store; key: string; isCurrent: () => boolean }

/** What a GET's answer becomes: a fill, or a body too large to cache (a revalidation's 200 too). */
export async function settle(at: FlightContext, got: GetResult): Promise<Outcome> {
  const { options, ck, store, key, isCurrent } = at
  const { cache, known, maxObjectSize, telemetry, logger } = options
  const meta = typed(key, got.meta)
  if (meta.size > maxObjectSize) {
    if (isCurrent()) known.remember(ck, meta)
    let body: Readable | undefined = got.body
    const take = () => {
      const taken = body
      body = undefined
      return taken
    }
    return { kind: 'too-large', meta, take }
  }
  const fill = new Fill(meta)
  const filled = fill.consume(got.body)
  // An untyped object waits for its leading bytes (or its end) to be typed by them.
  const typing = isGenericContentType(meta.contentType)
    ? fill.head(SNIFF_BYTES).then(async (head) => {
        // A parser failure on odd bytes is no reason to fail the response: keep the generic type.
      const sniffed = await typeFromMagicBytes(head).catch(() => undefined)
        if (sniffed) fill.meta = { ...meta, contentType: sniffed }
      })
    : Promise.resolve()
  const done = Promise.all([filled, typing]).then(
    async ([bytes]) => {
      if (isCurrent()) await cache.set(ck, fill.meta, bytes)
    },
    (error: unknown) => {
      telemetry.upstreamError(store.id, 'get-body', error instanceof UpstreamError ? error.kind : 'io')
      logger.warn('upstream body failed mid-fill; not cached', { store: store.id, err: error })
    },
  )
  // A body that fails before its leading bytes fails the flight: nothing was sent, so a 5xx.
  await typing.catch((error: unknown) => {
    throw asUpstreamError(store.id, error, 'upstream body failed before its first bytes')
  })
  if (isCurrent()) known.remember(ck, fill.meta)
  return { kind: 'fill', fill, done }
}

