import type { IncomingMessage } from 'node:http'

/** One request header as a string (Node joins a repeated custom header with ", "; only Set-Cookie is an array). */
export function headerOf(incoming: IncomingMessage, name: string): string | undefined {
  const value = incoming.headers[name]
  return typeof value === 'string' ? value : undefined
}
