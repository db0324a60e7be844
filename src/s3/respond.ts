/** Writing S3 answers: XML documents, empty successes, and errors (no body for HEAD). */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { S3Error } from './errors.ts'
import { errorDocument } from './xml.ts'

export function sendXml(outgoing: ServerResponse, status: number, xml: string, headers?: OutgoingHttpHeaders): void {
  outgoing.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(xml), ...headers })
  outgoing.end(xml)
}

export function sendEmpty(outgoing: ServerResponse, status: number, headers?: OutgoingHttpHeaders): void {
  outgoing.writeHead(status, { 'Content-Length': 0, ...headers })
  outgoing.end()
}

/** An error in S3's XML; a HEAD answer carries the status and headers only (S3 does the same). */
export function sendError(outgoing: ServerResponse, method: string, error: S3Error, resource: string, requestId: string): void {
  // Given here: the request may not have been tagged (request-id.ts).
  const headers = { ...error.headers, 'x-amz-request-id': requestId }
  if (method === 'HEAD') {
    sendEmpty(outgoing, error.status, headers)
    return
  }
  sendXml(outgoing, error.status, errorDocument(error.code, error.message, resource, requestId), headers)
}
