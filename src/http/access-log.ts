/**
 * `log.access`: one JSON line per request, written when its response closes. Built only
 * when enabled (app.ts installs nothing otherwise), and cheap when on: no header object is
 * built, the bytes sent are the connection's `bytesWritten` delta (for a response that ended
 * synchronously, its header block plus its `Content-Length`), and lines are batched
 * into one stdout write per 100 ms or 64 KiB (`LineWriter`), flushed on shutdown.
 *
 * Never logged: the query string (a presigned `sig`), `Authorization`, any header value but
 * the gateway's own `X-CG-Status`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Principal } from '../auth/middleware.ts'

/** Lines wait at most this long, or until this many bytes wait. */
const FLUSH_MS = 100
const MAX_BUFFERED = 64 * 1024

/**
 * Whole lines, batched: one `write` per 100 ms (or per 64 KiB), so lines never interleave
 * with other output and a busy gateway makes few syscalls. (stdout to a pipe is a synchronous
 * write on Linux: once per event-loop turn, it cost a quarter of a 4 KiB hit's throughput —
 * `npm run bench -- --only hit-4k-ab --baseline-root <old>`.) `flush()` writes what is pending
 * at once (shutdown); a crash loses at most the last 100 ms of lines.
 */
export class LineWriter {
  #pending: string[] = []
  #bytes = 0
  #scheduled: NodeJS.Timeout | undefined
  readonly #write: (chunk: string) => void

  constructor(write: (chunk: string) => void = (chunk) => void process.stdout.write(chunk)) {
    this.#write = write
  }

  push(line: string): void {
    this.#pending.push(line)
    this.#bytes += line.length
    if (this.#bytes >= MAX_BUFFERED) this.flush()
    else if (this.#scheduled === undefined) {
      this.#scheduled = setTimeout(() => this.flush(), FLUSH_MS)
      // Shutdown flushes explicitly; a pending batch never holds the process open.
      this.#scheduled.unref()
    }
  }

  flush(): void {
    if (this.#scheduled) clearTimeout(this.#scheduled)
    this.#scheduled = undefined
    if (this.#pending.length === 0) return
    const chunk = this.#pending.join('')
    this.#pending = []
    this.#bytes = 0
    this.#write(chunk)
  }
}

/** An S3 request whose SigV4 signature verified: the access key that signed it. */
export interface S3Principal {
  kind: 's3'
  accessKeyId: string
}

/** Who an access line names: an object route's principal or an S3 access key. */
export type LoggedPrincipal = Principal | S3Principal

/** Where the principal of an authenticated request is kept for its access line. */
const PRINCIPAL = Symbol('cachegate.principal')
type WithPrincipal = IncomingMessage & { [PRINCIPAL]?: LoggedPrincipal }

/** The fields of one line (README "Operations" shows an example). */
export interface AccessRecord {
  time: string
  level: 'info'
  msg: 'access'
  method: string
  /** The first path segment of an object request. */
  bucket?: string
  /** The path as sent, without the query. */
  path: string
  status: number
  /** Bytes written to the connection for this response, headers included. */
  bytes: number
  duration_ms: number
  /** The `X-CG-Status` value, when the response had one. */
  cache?: string
  auth: 'presigned' | 'bearer' | 's3' | 'none'
  /** The scoped token's id, when the principal has one. */
  token_id?: string
  /** The S3 access key whose signature verified (`auth: "s3"`). */
  access_key_id?: string
  client: string
  /** The response did not complete (the client left or the connection was cut). */
  aborted?: true
}

export interface AccessLogOptions {
  writer: LineWriter
  clientAddress: (incoming: IncomingMessage) => string
}

/** `X-CG-Status` from the header block Node wrote (object responses pass a plain object to `writeHead`, which `getHeader` cannot see). */
function cacheStatus(outgoing: ServerResponse): string | undefined {
  const block = (outgoing as ServerResponse & { _header?: string | null })._header
  if (typeof block !== 'string') return undefined
  const at = block.indexOf('\r\nX-CG-Status: ')
  if (at === -1) return undefined
  const start = at + 15
  return block.slice(start, block.indexOf('\r\n', start))
}

/**
 * Bytes of a response that ended synchronously, from its own header block: the block's length
 * plus its declared `Content-Length` (none for HEAD, 204 and 304). Reading the connection's
 * `bytesWritten` instead (it walks the write queue) cost a tenth of a 4 KiB hit.
 */
function endedBytes(incoming: IncomingMessage, outgoing: ServerResponse): number {
  const block = (outgoing as ServerResponse & { _header?: string | null })._header
  if (typeof block !== 'string') return 0
  const status = outgoing.statusCode
  if (incoming.method === 'HEAD' || status === 204 || status === 304) return block.length
  const at = block.indexOf('\r\nContent-Length: ')
  // Every synchronous answer here declares its length; without one only the header is known.
  if (at === -1) return block.length
  const start = at + 18
  return block.length + Number(block.slice(start, block.indexOf('\r\n', start)))
}

/** `new Date().toISOString()`, made at most once per millisecond. */
let isoAt = -1
let isoText = ''
function isoNow(): string {
  const now = Date.now()
  if (now !== isoAt) {
    isoAt = now
    isoText = new Date(now).toISOString()
  }
  return isoText
}

/**
 * @example
 * const log = new AccessLog({ writer: new LineWriter(), clientAddress })
 * const started = performance.now()                        // per request, then either
 * log.ended(incoming, outgoing, path, isObjectPath(path), started)       // it ended synchronously
 * log.whenClosed(incoming, outgoing, path, isObjectPath(path), started)  // or not yet
 * log.authenticated(incoming, principal)                  // from the object routes and the S3 front end
 */
export class AccessLog {
  readonly #writer: LineWriter
  readonly #clientAddress: (incoming: IncomingMessage) => string

  constructor(options: AccessLogOptions) {
    this.#writer = options.writer
    this.#clientAddress = options.clientAddress
  }

  /** Records who the request authenticated as (called by the object routes and the S3 front end). */
  authenticated(incoming: IncomingMessage, principal: LoggedPrincipal): void {
    ;(incoming as WithPrincipal)[PRINCIPAL] = principal
  }

  /**
   * Writes the line of a response that already ended (`writableEnded`: a memory hit answered
   * synchronously): no listener, no closure. `started` is `performance.now()` at its start.
   */
  ended(incoming: IncomingMessage, outgoing: ServerResponse, path: string, object: boolean, started: number): void {
    this.#line(incoming, outgoing, path, object, started, this.#clientAddress(incoming), false, endedBytes(incoming, outgoing))
  }

  /** Writes the request's line when its response closes (completed or not). */
  whenClosed(incoming: IncomingMessage, outgoing: ServerResponse, path: string, object: boolean, started: number): void {
    // The address now: once the socket is gone, it may not say any more.
    const client = this.#clientAddress(incoming)
    const socket = incoming.socket
    const before = socket.bytesWritten
    outgoing.once('close', () => this.#line(incoming, outgoing, path, object, started, client, !outgoing.writableFinished, socket.bytesWritten - before))
  }

  #line(incoming: IncomingMessage, outgoing: ServerResponse, path: string, object: boolean, started: number, client: string, aborted: boolean, bytes: number): void {
    const principal = (incoming as WithPrincipal)[PRINCIPAL]
    const tokenId = principal && 'tokenId' in principal && typeof principal.tokenId === 'string' ? principal.tokenId : undefined
    const accessKeyId = principal?.kind === 's3' ? principal.accessKeyId : undefined
    const cache = cacheStatus(outgoing)
    // Built by hand (JSON.stringify of a record was most of this line's cost): the fixed
    // fields are known JSON-safe; every string from the request is JSON-escaped.
    this.#writer.push(
      `{"time":"${isoNow()}","level":"info","msg":"access","method":${JSON.stringify(incoming.method ?? 'GET')}` +
        (object ? `,"bucket":${JSON.stringify(path.slice(1, path.indexOf('/', 1)))}` : '') +
        `,"path":${JSON.stringify(path)},"status":${outgoing.statusCode},"bytes":${bytes}` +
        `,"duration_ms":${Math.round((performance.now() - started) * 10) / 10}` +
        (cache === undefined ? '' : `,"cache":${JSON.stringify(cache)}`) +
        `,"auth":"${principal?.kind ?? 'none'}"` +
        (tokenId === undefined ? '' : `,"token_id":${JSON.stringify(tokenId)}`) +
        (accessKeyId === undefined ? '' : `,"access_key_id":${JSON.stringify(accessKeyId)}`) +
        `,"client":${JSON.stringify(client)}` +
        (aborted ? ',"aborted":true' : '') +
        '}\n',
    )
  }

  flush(): void {
    this.#writer.flush()
  }
}
