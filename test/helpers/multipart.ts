import assert from 'node:assert/strict'

/** The parts of a multipart/byteranges body, in the order they were sent: each part's Content-Range and bytes. */
export function multipartParts(body: Buffer, contentType: string): { range: string; bytes: Buffer }[] {
  const boundary = /boundary=(\S+)/.exec(contentType)?.[1]
  assert.ok(boundary, contentType)
  const delimiter = Buffer.from(`--${boundary}`)
  const found: { range: string; bytes: Buffer }[] = []
  let at = body.indexOf(delimiter)
  while (at >= 0) {
    const next = body.indexOf(delimiter, at + delimiter.length)
    if (next < 0) break
    const part = body.subarray(at + delimiter.length, next - 2) // the CRLF before a delimiter belongs to it
    const headEnd = part.indexOf('\r\n\r\n')
    const range = /Content-Range: bytes (\S+)/.exec(part.subarray(0, headEnd).toString('latin1'))?.[1] ?? ''
    found.push({ range, bytes: part.subarray(headEnd + 4) })
    at = next
  }
  return found
}
