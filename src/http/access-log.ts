/**
 * `log.access`: one JSON line per request, written when its response closes. Built only
 * when enabled (app.ts installs nothing otherwise), and cheap when on: no header object is
 * built, the bytes sent are the connection's `bytesWritten` delta, and lines are batched
 * into one stdout write per event-loop turn (`LineWriter`), flushed on shutdown.
 *
 * Never logged: the query string (a presigned `sig`), `Authorization`, any header value but
 * the gateway's own `X-CG-Status`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Principal } from '../auth/middleware.ts'

/** Lines are written at least this often (each event-loop turn), or once this many bytes wait. */
const MAX_BUFFERED = 64 * 1024

/**
 * Whole lines, batched: one `write` per event-loop turn (or per 64 KiB), so lines never
 * interleave with other output and a busy gateway makes few syscalls. `flush()` writes what
 * is pending at once (shutdown).
 */
export class LineWriter {
  #pending: string[] = []
  #bytes = 0
  #scheduled: NodeJS.Immediate | undefined
  readonly #write: (chunk: string) => void

  constructor(write: (chunk: string) => void = (chunk) => void process.stdout.write(chunk)) {
    this.#write = write
  }

  push(line: string): void {
    this.#pending.push(line)
    this.#bytes += line.length
    if (this.#bytes >= MAX_BUFFERED) this.flush()
    else this.#scheduled ??= setImmediate(() => this.flush())
  }

  flush(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled)
    this.#scheduled = undefined
    if (this.#pending.length === 0) return
    const chunk = this.#pending.join('')
    this.#pending = []
    this.#bytes = 0
    this.#write(chunk)
  }
}

/** Where the principal of an authenticated request is kept for its access line. */
const PRINCIPAL = Symbol('cachegate.principal')
type WithPrincipal = IncomingMessage & { [PRINCIPAL]?: Principal }

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
  auth: 'presigned' | 'bearer' | 'none'
  /** The scoped token's id, when the principal has one. */
  token_id?: string
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
 * @example
 * const log = new AccessLog({ writer: new LineWriter(), clientAddress })
 * log.begin(incoming, outgoing, path, isObjectPath(path))  // per request
 * log.authenticated(incoming, principal)                  // from the object routes
 */
export class AccessLog {
  readonly #writer: LineWriter
  readonly #clientAddress: (incoming: IncomingMessage) => string

  constructor(options: AccessLogOptions) {
    this.#writer = options.writer
    this.#clientAddress = options.clientAddress
  }

  /** Records who the request authenticated as (called by the object routes). */
  authenticated(incoming: IncomingMessage, principal: Principal): void {
    ;(incoming as WithPrincipal)[PRINCIPAL] = principal
  }

  /** Writes the request's line when its response closes (completed or not). */
  begin(incoming: IncomingMessage, outgoing: ServerResponse, path: string, object: boolean): void {
    const started = performance.now()
    const socket = incoming.socket
    const writtenBefore = socket.bytesWritten
    const client = this.#clientAddress(incoming)
    outgoing.once('close', () => {
      const principal = (incoming as WithPrincipal)[PRINCIPAL]
      const record: AccessRecord = {
        time: new Date().toISOString(),
        level: 'info',
        msg: 'access',
        method: incoming.method ?? 'GET',
        bucket: object ? path.slice(1, path.indexOf('/', 1)) : undefined,
        path,
        status: outgoing.statusCode,
        bytes: socket.bytesWritten - writtenBefore,
        duration_ms: Math.round((performance.now() - started) * 10) / 10,
        cache: cacheStatus(outgoing),
        auth: principal?.kind ?? 'none',
        // Scoped tokens (in progress elsewhere) carry an id; today's principals do not.
        token_id: principal && 'tokenId' in principal && typeof principal.tokenId === 'string' ? principal.tokenId : undefined,
        client,
        aborted: outgoing.writableFinished ? undefined : true,
      }
      this.#writer.push(`${JSON.stringify(record)}\n`)
    })
  }

  flush(): void {
    this.#writer.flush()
  }
}
