/**
 * The client's address: the socket's peer, or — when the peer is one of the operator's
 * balancers (`trust_proxy`) — the right-most `X-Forwarded-For` entry that is not itself
 * trusted. Entries left of that one were written by whoever sent the request to the first
 * trusted hop, so anyone can put anything there; only the hops we trust are believed.
 */
import type { IncomingMessage } from 'node:http'
import { BlockList, isIP } from 'node:net'

/** The right end of `X-Forwarded-For` looked at: a client may send any header; the hops we trust add a few entries. */
const MAX_FORWARDED_LENGTH = 4096

/** `::ffff:10.0.0.1` (a dual-stack socket's IPv4 peer) → `10.0.0.1`; other addresses as they are. */
export function normalizeAddress(address: string): string {
  return address.length > 7 && address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
}

/**
 * Parses `trust_proxy` entries: an IPv4 or IPv6 address or CIDR (`10.0.0.0/8`, `fd00::/8`).
 * Returns the first bad entry's problem instead when one does not parse.
 */
export function parseTrustedProxies(entries: readonly string[]): { list: BlockList } | { error: string } {
  const list = new BlockList()
  for (const entry of entries) {
    const [address = '', bits, ...rest] = entry.trim().split('/')
    const family = isIP(address)
    const max = family === 4 ? 32 : 128
    if (family === 0 || rest.length > 0) return { error: `"${entry}" is not an IP address or CIDR` }
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) {
      list.addAddress(address, type)
      continue
    }
    const prefix = /^\d{1,3}$/.test(bits) ? Number(bits) : NaN
    if (!(prefix >= 0 && prefix <= max)) return { error: `"${entry}": prefix length must be 0–${max}` }
    list.addSubnet(address, prefix, type)
  }
  return { list }
}

/** True when `address` is a valid IP in `list` (an unparsable address is never trusted). */
function isTrusted(list: BlockList, address: string): boolean {
  const family = isIP(address)
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/** The peer's address, normalized; `unknown` for a socket already gone. */
export function peerAddress(incoming: IncomingMessage): string {
  const address = incoming.socket.remoteAddress
  return address === undefined ? 'unknown' : normalizeAddress(address)
}

/**
 * Builds the per-request lookup. With no trusted proxies it is the peer address: one
 * property read, no header parsed.
 *
 * @example
 * const clientAddress = createClientAddress(['10.0.0.0/8'])
 * clientAddress(incoming) // '203.0.113.7' for a request from 10.0.0.5 with X-Forwarded-For: 203.0.113.7
 */
export function createClientAddress(trustProxy: readonly string[]): (incoming: IncomingMessage) => string {
  if (trustProxy.length === 0) return peerAddress
  const parsed = parseTrustedProxies(trustProxy)
  if ('error' in parsed) throw new TypeError(`trust_proxy: ${parsed.error}`)
  const { list } = parsed
  return function clientAddress(incoming) {
    let hop = peerAddress(incoming)
    if (!isTrusted(list, hop)) return hop
    // Node joins repeated X-Forwarded-For headers with ", " (in order), as one list.
    const header = incoming.headers['x-forwarded-for']
    let forwarded = Array.isArray(header) ? header.join(',') : header
    if (forwarded === undefined) return hop
    // Only the right end is read: our hops append there, and a client may put anything, of
    // any length, in front. (Giving up on a long header would answer with the balancer's own
    // address: anyone could pass as it.) The first entry of the window may be cut: dropped.
    if (forwarded.length > MAX_FORWARDED_LENGTH) {
      const cut = forwarded.indexOf(',', forwarded.length - MAX_FORWARDED_LENGTH)
      forwarded = cut === -1 ? '' : forwarded.slice(cut + 1)
    }
    const entries = forwarded.split(',')
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = normalizeAddress(stripPort(entries[i]!.trim()))
      // A hop we trust wrote something that is not an address: believe nothing further left.
      if (isIP(entry) === 0) return hop
      hop = entry
      if (!isTrusted(list, hop)) return hop
    }
    // Every hop is trusted: the left-most is the closest to the client we know.
    return hop
  }
}

/** `[2001:db8::1]:443` → `2001:db8::1`, `192.0.2.1:80` → `192.0.2.1` (some proxies add ports). */
function stripPort(entry: string): string {
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']')
    return close === -1 ? entry : entry.slice(1, close)
  }
  const colon = entry.indexOf(':')
  return colon !== -1 && colon === entry.lastIndexOf(':') ? entry.slice(0, colon) : entry
}
