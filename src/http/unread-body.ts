import type { IncomingMessage, ServerResponse } from 'node:http'

/** RFC 9112 §6.3: a request has a body when it has Transfer-Encoding or a Content-Length above 0. */
export function announcesBody(incoming: IncomingMessage): boolean {
  const { headers } = incoming
  if (headers['transfer-encoding'] !== undefined) return true
  const length = headers['content-length']
  return length !== undefined && length !== '0'
}

/** True while a body the client announced has not been read to its end. */
export function hasUnreadBody(incoming: IncomingMessage): boolean {
  return !incoming.complete && announcesBody(incoming)
}

/**
 * Makes the response close the connection when it is done (RFC 9112 §9.6) if the request
 * body is still unread. Node would otherwise read and discard the rest of the body to keep
 * the connection alive, however long it is: a refused `Content-Length: 1e11` PUT had the
 * gateway read gigabytes for nobody. A client still sending then sees the connection close
 * (on a lossy network possibly a reset before it reads the status; @hono/node-server drains
 * up to 64 MiB / 500 ms to soften that, but an unauthenticated client gets no such budget).
 * Call before the response head is written.
 */
export function closeIfBodyUnread(outgoing: ServerResponse): void {
  if (!outgoing.headersSent && hasUnreadBody(outgoing.req)) outgoing.setHeader('Connection', 'close')
}
