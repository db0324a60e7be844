/**
 * `x-amz-request-id` on every S3 answer, added where the answer's headers are written rather
 * than set beforehand: a header set with `setHeader` before `writeHead(status, headers)` sends
 * Node down its slow path, every header of the answer through `setHeader`'s checks one by one
 * (measured: 10 µs of the 66 µs of CPU a 4 KiB S3 hit cost, `npm run bench:s3`).
 *
 * GetObject and HeadObject hand the header to the shared read handlers (`requestIdHeader`),
 * which merge it into the headers they write; every other answer is tagged: its `writeHead`
 * adds the header. Tagging gives the response object a shape of its own (an own `writeHead`
 * and a symbol), which cost a 4 KiB hit 3 µs of CPU in Node's HTTP code (`npm run bench:s3`),
 * so the hottest operations are not tagged.
 */
import { randomBytes } from 'node:crypto'
import { type OutgoingHttpHeader, type OutgoingHttpHeaders, ServerResponse } from 'node:http'

/**
 * Request ids: a prefix drawn once per process (32 random bits and the start time: two
 * containers that both run as pid 1 and start in the same millisecond still differ), then a
 * count, no randomness per request. The count is written in decimal: one number-to-string per
 * request; the prefix has a fixed length, so two counts never make the same id.
 */
export function requestIds(): () => string {
  const prefix = `${randomBytes(4).toString('hex')}${Date.now().toString(16).padStart(12, '0')}`.toUpperCase()
  let n = 0
  return () => `${prefix}${++n}`
}

/** The header for the shared read handlers' `extra` (http/object/get.ts). */
export const requestIdHeader = (id: string): OutgoingHttpHeaders => ({ 'x-amz-request-id': id })

const REQUEST_ID = Symbol('x-amz-request-id')
type Tagged = ServerResponse & { [REQUEST_ID]: string }
type Headers = OutgoingHttpHeaders | OutgoingHttpHeader[]

const nodeWriteHead = ServerResponse.prototype.writeHead as (this: ServerResponse, status: number, message?: string | Headers, headers?: Headers) => ServerResponse

/** `writeHead` with the request id among the headers it is given (one function for every response: no closure per request). */
function writeHeadWithRequestId(this: Tagged, status: number, message?: string | Headers, headers?: Headers): ServerResponse {
  const given = typeof message === 'string' ? headers : message
  const id = this[REQUEST_ID]
  let merged: Headers
  if (Array.isArray(given)) {
    // The array form (unused here today): Node merges it with headers set before.
    this.setHeader('x-amz-request-id', id)
    merged = given
  } else {
    merged = given === undefined ? { 'x-amz-request-id': id } : { ...given, 'x-amz-request-id': id }
  }
  return typeof message === 'string' ? nodeWriteHead.call(this, status, message, merged) : nodeWriteHead.call(this, status, merged)
}

/**
 * Gives every answer on `outgoing` the header `x-amz-request-id: id`, however it is written
 * (`writeHead` by the shared object handlers, the XML writers, or Node's implicit header).
 */
export function tagWithRequestId(outgoing: ServerResponse, id: string): void {
  ;(outgoing as Tagged)[REQUEST_ID] = id
  outgoing.writeHead = writeHeadWithRequestId as ServerResponse['writeHead']
}
