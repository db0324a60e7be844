import { Readable } from 'node:stream'
import { fileTypeFromBuffer } from 'file-type'
import mime from 'mime-types'

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream'

/** A syntactically valid media type (RFC 9110 §8.3.1), parameters allowed; bounded length. */
export function isValidContentType(value: string): boolean {
  return value.length <= 256 && /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(\s*;\s*[\w!#$&^.+-]+=("[^"\\\r\n]*"|[\w!#$&^.+-]+))*\s*$/.test(value)
}

/**
 * Types a browser renders as a document that can run script on the serving origin: HTML, XML
 * and every `+xml` type (SVG, XHTML, Atom...). Parameters are ignored and case does not
 * matter (RFC 9110 §8.3.1). String checks only: this runs for every presigned response.
 */
export function isActiveContentType(contentType: string): boolean {
  // Asked on every response that builds its headers: most types end the question here,
  // without allocating (every active type contains "ml": html, xml, +xml).
  if (!/ml/i.test(contentType)) return false
  const semicolon = contentType.indexOf(';')
  const essence = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase()
  return essence === 'text/html' || essence === 'text/xml' || essence === 'application/xml' || essence.endsWith('+xml')
}

/** The type registered for the key's extension, if any (`a/b.png` → `image/png`). */
export function contentTypeFromKey(key: string): string | undefined {
  const type = mime.lookup(key)
  return type === false ? undefined : type
}

/**
 * A type that says nothing about the bytes: what S3 and Azure assign when the writer gave
 * none (`application/octet-stream`, `binary/octet-stream`), or none at all.
 */
export function isGenericContentType(contentType: string | undefined): boolean {
  if (!contentType) return true
  const essence = contentType.split(';', 1)[0]!.trim().toLowerCase()
  return essence === DEFAULT_CONTENT_TYPE || essence === 'binary/octet-stream' || essence === ''
}

/** Enough leading bytes for `typeFromMagicBytes`. */
export const SNIFF_BYTES = 4100

/** The type file-type recognises in the leading bytes, if any. */
export async function typeFromMagicBytes(head: Uint8Array): Promise<string | undefined> {
  return head.byteLength > 0 ? (await fileTypeFromBuffer(head))?.mime : undefined
}

/**
 * Reads up to 4100 leading bytes of `body` to sniff its type from magic bytes, and returns
 * a stream that yields every byte again (the sniffed head, then the rest, unbuffered).
 */
export async function sniffContentType(body: Readable): Promise<{ contentType: string | undefined; body: Readable }> {
  const head: Buffer[] = []
  let length = 0
  const iterator = body[Symbol.asyncIterator]()
  let ended = false
  while (length < SNIFF_BYTES) {
    const next = await iterator.next()
    if (next.done) {
      ended = true
      break
    }
    const chunk = next.value as Buffer
    head.push(chunk)
    length += chunk.byteLength
  }
  const headBytes = Buffer.concat(head, length)
  const type = await typeFromMagicBytes(headBytes)
  const replay = Readable.from(
    (async function* () {
      if (length > 0) yield headBytes
      if (ended) return
      let done = false
      try {
        for (;;) {
          const next = await iterator.next()
          if ((done = next.done === true)) return
          yield next.value as Buffer
        }
      } finally {
        // The consumer gave up early: release (destroy) the source too.
        if (!done) await iterator.return?.()
      }
    })(),
    { objectMode: false },
  )
  return { contentType: type, body: replay }
}
