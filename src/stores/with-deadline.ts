import { PassThrough, type Readable, Transform, type TransformCallback, pipeline } from 'node:stream'
import { UpstreamError } from '../errors.ts'
import { failWhenIdle, link } from '../streams.ts'
import type { ConditionalGetOptions, GetOptions, GetResult, NotModified, ObjectMeta, PutOptions, Store, StoreAdmin } from './types.ts'

export interface DeadlineOptions {
  /**
   * A HEAD or a GET must answer (headers) within this many ms; a GET body must not go silent
   * for longer while it is being read; a PUT's store must not leave its body unread (or, once
   * the body is complete, stay silent) for longer. Failures are `UpstreamError` kind `timeout`.
   */
  timeoutMs: number
}

/**
 * A store whose calls cannot outlive the upstream deadline. At the deadline the store request
 * itself is aborted (its signal is the caller's combined with the deadline's, `AbortSignal.any`),
 * so the SDK drops the socket and stops retrying instead of carrying on after the 504.
 * PUT has no whole-call deadline (uploads are long), only the idle one.
 *
 * @example
 * const store = withDeadline(createS3Store({ id: 'media', bucket: 'b' }), { timeoutMs: 30_000 })
 * await store.head('a.jpg') // rejects with UpstreamError kind 'timeout' after 30 s of silence
 */
export function withDeadline(store: Store, options: DeadlineOptions): Store {
  const { timeoutMs } = options
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new TypeError(`withDeadline: timeoutMs must be a positive number, got ${timeoutMs}`)
  const { id } = store

  /**
   * Runs `call` with a signal that aborts at the deadline, and rejects then even if the store
   * ignores its signal; an answer that comes after the deadline is handed to `discard`.
   */
  async function answered<T>(op: string, signal: AbortSignal | undefined, call: (signal: AbortSignal) => Promise<T>, discard: (late: T) => void): Promise<T> {
    const deadline = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new UpstreamError(id, 'timeout', `store ${op} did not answer within ${timeoutMs} ms`)
        deadline.abort(error)
        reject(error)
      }, timeoutMs)
    })
    let pending: Promise<T>
    try {
      pending = call(signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal)
    } catch (error) {
      // A store that throws instead of rejecting: the deadline must not fire later, unobserved.
      clearTimeout(timer)
      throw error
    }
    try {
      return await Promise.race([pending, expired])
    } catch (error) {
      // The store's own error for the abort is kind 'aborted': the reason is the timeout.
      throw deadline.signal.aborted ? (deadline.signal.reason as Error) : error
    } finally {
      clearTimeout(timer)
      if (deadline.signal.aborted) pending.then(discard, () => {})
    }
  }

  /**
   * The body as the caller will read it, failing with kind 'timeout' when the store sends
   * nothing for `timeoutMs` while the caller waits for bytes. A reader that is behind (a slow
   * client: the buffers between are full) is not the store's silence.
   */
  function watched(body: Readable): Readable {
    const out = new PassThrough()
    pipeline(body, out, () => {})
    const stalled = () => new UpstreamError(id, 'timeout', `store body stalled for ${timeoutMs} ms`)
    failWhenIdle(body, timeoutMs, stalled, () => out.writableNeedDrain || out.readableLength > 0)
    return out
  }

  function head(key: string, opts: { signal?: AbortSignal } = {}): Promise<ObjectMeta | null> {
    return answered('head', opts.signal, (signal) => store.head(key, { ...opts, signal }), () => {})
  }

  function get(key: string, opts: ConditionalGetOptions): Promise<GetResult | NotModified | null>
  function get(key: string, opts?: GetOptions): Promise<GetResult | null>
  async function get(key: string, opts: GetOptions & { ifNoneMatch?: string } = {}): Promise<GetResult | NotModified | null> {
    const got = await answered(
      opts.op ?? 'get',
      opts.signal,
      (signal) => store.get(key, { ...opts, signal } as ConditionalGetOptions),
      // Its signal was aborted: the body may already be failing with an AbortError nobody reads.
      (late) => late && 'body' in late && late.body.on('error', () => {}).destroy(),
    )
    if (got === null || 'notModified' in got) return got
    return { ...got, body: watched(got.body) }
  }

  /**
   * Watches how the store takes the body: it fails when the store leaves bytes unread, or
   * stays silent once the body is complete, for `timeoutMs` (checked four times per period).
   * A client that is slow to send is not the store's fault: that time does not count.
   */
  function upload<T>(op: string, body: Readable, outer: AbortSignal | undefined, call: (body: Readable, signal: AbortSignal) => Promise<T>): Promise<T> {
    return watchedUpload(id, op, timeoutMs, body, outer, call)
  }

  function put(key: string, body: Readable, opts: PutOptions): Promise<ObjectMeta> {
    return upload('put', body, opts.signal, (tap, signal) => store.put(key, tap, { ...opts, signal }))
  }

  const close = store.close?.bind(store)
  const admin = adminWithDeadline(store, upload, (op, signal, call) => answered(op, signal, call, () => {}))
  return { type: store.type, id, head, get, put, ...admin, ...(close && { close }) }
}

/**
 * The StoreAdmin calls, each only when the store has it. list, delete, createMultipart,
 * listParts and abortMultipart must answer within the deadline; uploadPart is watched as a PUT;
 * copy and completeMultipart have no deadline (the store works in proportion to the object's
 * size, with no bytes of ours moving to watch), only the caller's signal.
 */
function adminWithDeadline(
  store: Store,
  upload: <T>(op: string, body: Readable, outer: AbortSignal | undefined, call: (body: Readable, signal: AbortSignal) => Promise<T>) => Promise<T>,
  answered: <T>(op: string, signal: AbortSignal | undefined, call: (signal: AbortSignal) => Promise<T>) => Promise<T>,
): Partial<StoreAdmin> {
  const { list, delete: remove, copy, createMultipart, uploadPart, completeMultipart, abortMultipart, listParts } = store
  const admin: Partial<StoreAdmin> = {}
  if (list) admin.list = (opts) => answered('list', opts.signal, (signal) => list.call(store, { ...opts, signal }))
  if (remove) admin.delete = (key, opts) => answered('delete', opts?.signal, (signal) => remove.call(store, key, { ...opts, signal }))
  if (copy) admin.copy = (source, destination, opts) => copy.call(store, source, destination, opts)
  if (createMultipart) admin.createMultipart = (key, opts) => answered('create multipart', opts.signal, (signal) => createMultipart.call(store, key, { ...opts, signal }))
  if (uploadPart) {
    admin.uploadPart = (key, uploadId, partNumber, body, opts) =>
      upload('upload part', body, opts.signal, (tap, signal) => uploadPart.call(store, key, uploadId, partNumber, tap, { ...opts, signal }))
  }
  if (completeMultipart) admin.completeMultipart = (key, uploadId, parts, opts) => completeMultipart.call(store, key, uploadId, parts, opts)
  if (abortMultipart) admin.abortMultipart = (key, uploadId, opts) => answered('abort multipart', opts?.signal, (signal) => abortMultipart.call(store, key, uploadId, { ...opts, signal }))
  if (listParts) admin.listParts = (key, uploadId, opts) => answered('list parts', opts?.signal, (signal) => listParts.call(store, key, uploadId, { ...opts, signal }))
  return admin
}

/**
 * Runs an upload (`put`, `uploadPart`) of `body`, watching how the store takes it: it fails
 * when the store leaves bytes unread, or stays silent once the body is complete, for
 * `timeoutMs` (checked four times per period). A client that is slow to send is not the
 * store's fault: that time does not count.
 */
async function watchedUpload<T>(id: string, op: string, timeoutMs: number, body: Readable, outer: AbortSignal | undefined, call: (body: Readable, signal: AbortSignal) => Promise<T>): Promise<T> {
  let received = 0
  const tap = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      received += chunk.length
      callback(null, chunk)
    },
  })
  link(body, tap)
  const stalled = new AbortController()
  let fail!: (error: Error) => void
  const stuck = new Promise<never>((_, reject) => (fail = reject))
  let taken = 0
  let moved = performance.now()
  const check = setInterval(
    () => {
      const now = performance.now()
      const storesTurn = tap.readableLength > 0 || tap.writableLength > 0 || tap.writableEnded
      const takenNow = received - tap.readableLength
      if (takenNow !== taken || !storesTurn) {
        taken = takenNow
        moved = now
        return
      }
      if (now - moved < timeoutMs) return
      const error = new UpstreamError(id, 'timeout', `store ${op} made no progress for ${timeoutMs} ms`)
      stalled.abort(error)
      tap.destroy(error)
      fail(error)
    },
    Math.max(10, timeoutMs / 4),
  )
  const signal = outer ? AbortSignal.any([outer, stalled.signal]) : stalled.signal
  try {
    return await Promise.race([call(tap, signal), stuck])
  } catch (error) {
    throw stalled.signal.aborted ? (stalled.signal.reason as Error) : error
  } finally {
    clearInterval(check)
  }
}
