import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import { UpstreamError, type UpstreamErrorKind } from '../errors.ts'
import type { ConditionalGetOptions, GetOptions, GetResult, NotModified, ObjectMeta, PutOptions, Store, StoreAdmin } from './types.ts'

/** The two calls of `Telemetry` this decorator makes. */
export interface UpstreamMetrics {
  upstreamOk(store: string, op: string, seconds: number): void
  upstreamError(store: string, op: string, kind: UpstreamErrorKind): void
}

/**
 * A store whose calls are counted and timed: `upstreamOk(store.id, op, seconds)` when a call
 * answers (an object, a miss or "not modified"), `upstreamError(store.id, op, kind)` when it
 * fails with an `UpstreamError`. `op` is `head`, `put`, or `get` (or `GetOptions.op`, e.g.
 * `get-page`). A call's time is until it answers, not until its body is read.
 *
 * @example
 * const store = withMetrics(withDeadline(createFsStore({ id: 'local', root }), { timeoutMs }), telemetry)
 */
export function withMetrics(store: Store, telemetry: UpstreamMetrics): Store {
  const { id } = store

  async function measured<T>(op: string, call: () => Promise<T>): Promise<T> {
    const started = performance.now()
    try {
      const value = await call()
      telemetry.upstreamOk(id, op, (performance.now() - started) / 1000)
      return value
    } catch (error) {
      if (error instanceof UpstreamError) telemetry.upstreamError(id, op, error.kind)
      throw error
    }
  }

  function get(key: string, opts: ConditionalGetOptions): Promise<GetResult | NotModified | null>
  function get(key: string, opts?: GetOptions): Promise<GetResult | null>
  function get(key: string, opts: GetOptions & { ifNoneMatch?: string } = {}): Promise<GetResult | NotModified | null> {
    return measured(opts.op ?? 'get', () => store.get(key, opts as ConditionalGetOptions))
  }

  const close = store.close?.bind(store)
  return {
    type: store.type,
    id,
    head: (key: string, opts?: { signal?: AbortSignal }): Promise<ObjectMeta | null> => measured('head', () => store.head(key, opts)),
    get,
    put: (key: string, body: Readable, opts: PutOptions): Promise<ObjectMeta> => measured('put', () => store.put(key, body, opts)),
    ...measuredAdmin(store, measured),
    ...(close && { close }),
  }
}

/**
 * The StoreAdmin calls the store has, measured with op labels `list`, `delete`, `copy`,
 * `create-multipart`, `upload-part`, `complete-multipart`, `abort-multipart`, `list-parts`.
 */
function measuredAdmin(store: Store, measured: <T>(op: string, call: () => Promise<T>) => Promise<T>): Partial<StoreAdmin> {
  const { list, delete: remove, copy, createMultipart, uploadPart, completeMultipart, abortMultipart, listParts } = store
  const admin: Partial<StoreAdmin> = {}
  if (list) admin.list = (opts) => measured('list', () => list.call(store, opts))
  if (remove) admin.delete = (key, opts) => measured('delete', () => remove.call(store, key, opts))
  if (copy) admin.copy = (source, destination, opts) => measured('copy', () => copy.call(store, source, destination, opts))
  if (createMultipart) admin.createMultipart = (key, opts) => measured('create-multipart', () => createMultipart.call(store, key, opts))
  if (uploadPart) admin.uploadPart = (key, uploadId, partNumber, body, opts) => measured('upload-part', () => uploadPart.call(store, key, uploadId, partNumber, body, opts))
  if (completeMultipart) admin.completeMultipart = (key, uploadId, parts, opts) => measured('complete-multipart', () => completeMultipart.call(store, key, uploadId, parts, opts))
  if (abortMultipart) admin.abortMultipart = (key, uploadId, opts) => measured('abort-multipart', () => abortMultipart.call(store, key, uploadId, opts))
  if (listParts) admin.listParts = (key, uploadId, opts) => measured('list-parts', () => listParts.call(store, key, uploadId, opts))
  return admin
}
