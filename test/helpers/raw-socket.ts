/**
 * A raw TCP client for connection-level tests: what the server sends, and when it closes,
 * exactly as they happen (an HTTP client would hide a reset or retry).
 */
import { once } from 'node:events'
import net from 'node:net'

export interface RawConnection {
  socket: net.Socket
  /** Everything received so far, as latin1 text. */
  received(): string
  /** Resolves once the socket closed, with ms since it connected. */
  closed: Promise<number>
  /** True once the socket closed. */
  isClosed(): boolean
  /** Bytes written by `stream`. */
  written(): number
  /** Writes `chunk` as fast as the socket takes it until stopped or closed (for large bodies). */
  stream(chunk: Buffer): void
  /** Writes `chunk` every `intervalMs` until stopped or closed (a trickling client). */
  trickle(chunk: Buffer, intervalMs: number): void
  stop(): void
  destroy(): void
}

/** Connects to the gateway at `base` (an http:// URL). */
export async function connectRaw(base: string): Promise<RawConnection> {
  const url = new URL(base)
  const socket = net.connect(Number(url.port), url.hostname)
  await once(socket, 'connect')
  const started = performance.now()
  let text = ''
  let written = 0
  let stopped = false
  let closed = false
  let timer: NodeJS.Timeout | undefined
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
  // A write racing the server's close fails with EPIPE / ECONNRESET: that is the point.
  socket.on('error', () => {})
  const closedAt = new Promise<number>((resolve) =>
    socket.once('close', () => {
      closed = true
      clearInterval(timer)
      resolve(performance.now() - started)
    }),
  )
  const connection: RawConnection = {
    socket,
    received: () => text,
    closed: closedAt,
    isClosed: () => closed,
    written: () => written,
    stream(chunk) {
      const pump = () => {
        while (!stopped && !closed && socket.write(chunk)) written += chunk.length
        if (!stopped && !closed) socket.once('drain', pump)
      }
      pump()
    },
    trickle(chunk, intervalMs) {
      timer = setInterval(() => {
        if (stopped || closed) return clearInterval(timer)
        socket.write(chunk)
        written += chunk.length
      }, intervalMs)
    },
    stop() {
      stopped = true
      clearInterval(timer)
    },
    destroy() {
      connection.stop()
      socket.destroy()
    },
  }
  return connection
}

/** Resolves with `promise`'s value, or `fallback` after `ms`. */
export function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([promise, new Promise<F>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]).finally(() => clearTimeout(timer))
}

/** Status code and lower-cased headers of the first response in `text` (undefined if none yet). */
export function parseHead(text: string): { status: number; headers: Record<string, string> } | undefined {
  const end = text.indexOf('\r\n\r\n')
  if (end === -1) return undefined
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status: Number(statusLine.split(' ')[1]), headers }
}
