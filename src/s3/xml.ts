/**
 * S3's XML, both ways, for the few documents the front end speaks: answers are built from
 * escaped text (XML 1.0 §2.4), request bodies (CompleteMultipartUpload, Delete) are read with a
 * deliberately small parser over an already bounded buffer. No DTDs, no entities beyond the five
 * predefined ones and character references: anything else is MalformedXML.
 */
import { S3Error } from './errors.ts'

export const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/'
const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

/** A value S3 clients read back as text. Characters XML 1.0 cannot hold at all are refused by key validation first. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"'\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : c === "'" ? '&apos;' : '&#13;'))
}

/** One element: a value is escaped; a child array is nested as is (already built). Undefined values are left out. */
export type XmlValue = string | number | boolean | Date | undefined | XmlNode[]
export type XmlNode = [name: string, value: XmlValue]

function render(nodes: XmlNode[]): string {
  let out = ''
  for (const [name, value] of nodes) {
    if (value === undefined) continue
    out += `<${name}>${Array.isArray(value) ? render(value) : escapeXml(value instanceof Date ? value.toISOString() : String(value))}</${name}>`
  }
  return out
}

/** A whole document with S3's namespace on its root element. */
export function xmlDocument(root: string, children: XmlNode[]): string {
  return `${DECLARATION}<${root} xmlns="${S3_NAMESPACE}">${render(children)}</${root}>`
}

/** An error document (S3 error responses carry no namespace). */
export function errorDocument(code: string, message: string, resource: string, requestId: string): string {
  return `${DECLARATION}${render([['Error', [['Code', code], ['Message', message], ['Resource', resource], ['RequestId', requestId]]]])}`
}

const ENTITY = /&(?:(amp|lt|gt|quot|apos)|#(\d{1,7})|#x([0-9a-fA-F]{1,6}));/g
const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

/** Text content with its references resolved; a bare `&` or `<` is malformed. */
export function unescapeXml(text: string): string {
  const out = text.replace(ENTITY, (_m, name: string | undefined, dec: string | undefined, hex: string | undefined) => {
    if (name) return NAMED[name]!
    const code = dec !== undefined ? Number(dec) : Number.parseInt(hex!, 16)
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) throw malformed('character reference out of range')
    return String.fromCodePoint(code)
  })
  if (/[<&]/.test(text.replace(ENTITY, ''))) throw malformed('unescaped markup in text')
  return out
}

const malformed = (why: string) => new S3Error('MalformedXML', `the XML you provided was not well-formed or did not validate against our published schema (${why})`)

/** The body without its declaration and comments, checked for what this parser will not read. */
function prepare(xml: string): string {
  if (/<!DOCTYPE|<!ENTITY|<!\[CDATA\[/i.test(xml)) throw malformed('DTDs and CDATA are not accepted')
  return withoutComments(xml.replace(/^\uFEFF?\s*<\?xml[^>]*\?>/, '')).trim()
}

/**
 * `text` without its `<!-- … -->` comments (an unclosed one is left as is). A scan with
 * `indexOf`, not a lazy regex: `/<!--[\s\S]*?-->/g` looks for the end once per opening, so a
 * body of openings alone took time quadratic in its length (seconds per 512 KiB).
 */
function withoutComments(text: string): string {
  let out = ''
  let at = 0
  for (;;) {
    const start = text.indexOf('<!--', at)
    const end = start === -1 ? -1 : text.indexOf('-->', start + 4)
    if (end === -1) return out + text.slice(at)
    out += text.slice(at, start)
    at = end + 3
  }
}

/** The inner text of `<root ...>...</root>` (namespaced or not), or MalformedXML. */
function rootContent(xml: string, root: string): string {
  const match = new RegExp(`^<${root}(?:\\s[^>]*)?>([\\s\\S]*)</${root}>$`).exec(prepare(xml))
  if (!match) throw malformed(`expected a <${root}> document`)
  return match[1]!
}

/** Where one `<name …>inner</name>` is: from its `<` to past its `>`, and its inner text. */
interface Found {
  start: number
  end: number
  inner: string
}

/**
 * Every `<name>…</name>` (or `<name attributes>…`) directly in `content`, in order, each ended
 * by the first `</name>` after it (no nesting of the same name). What the regex
 * `<name(?:\s[^>]*)?>([\s\S]*?)</name>` matches, found with `indexOf` in one pass: the
 * regex searched for the end once per opening, so openings that never close made it quadratic
 * (DeleteObjects reads 8 MiB: most of an hour of a blocked event loop).
 */
function findElements(content: string, name: string): Found[] {
  const open = `<${name}`
  const close = `</${name}>`
  const found: Found[] = []
  let at = 0
  for (;;) {
    const start = content.indexOf(open, at)
    if (start === -1) return found
    const next = content[start + open.length]
    if (next === undefined) return found
    if (next !== '>' && !/\s/.test(next)) {
      at = start + 1
      continue
    }
    const gt = content.indexOf('>', start + open.length)
    // No `>` or no closing tag after this opening: none after any later one either.
    if (gt === -1) return found
    const end = content.indexOf(close, gt + 1)
    if (end === -1) return found
    found.push({ start, end: end + close.length, inner: content.slice(gt + 1, end) })
    at = end + close.length
  }
}

/** Every `<name>...</name>` directly in `content` (no nesting of the same name). */
function elements(content: string, name: string): string[] {
  return findElements(content, name).map((found) => found.inner)
}

/** `content` with every `<name>...</name>` taken out. */
function withoutElements(content: string, name: string): string {
  let out = ''
  let at = 0
  for (const { start, end } of findElements(content, name)) {
    out += content.slice(at, start)
    at = end
  }
  return out + content.slice(at)
}

function textOf(content: string, name: string): string | undefined {
  const found = elements(content, name)
  if (found.length > 1) throw malformed(`more than one <${name}>`)
  return found[0] === undefined ? undefined : unescapeXml(found[0])
}

/** `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"…"</ETag></Part>…`; at most `maxParts`. */
export function parseCompleteMultipart(xml: string, maxParts: number): { partNumber: number; etag: string }[] {
  const parts = elements(rootContent(xml, 'CompleteMultipartUpload'), 'Part')
  if (parts.length === 0) throw malformed('no <Part>')
  if (parts.length > maxParts) throw malformed(`more than ${maxParts} parts`)
  return parts.map((part) => {
    const number = textOf(part, 'PartNumber')?.trim()
    const etag = textOf(part, 'ETag')?.trim()
    if (!number || !/^\d{1,5}$/.test(number) || !etag) throw malformed('each <Part> needs a <PartNumber> and an <ETag>')
    return { partNumber: Number(number), etag: etag.startsWith('"') ? etag : `"${etag}"` }
  })
}

/** `<Delete><Quiet>true</Quiet><Object><Key>…</Key></Object>…</Delete>`; at most `maxKeys` objects. */
export function parseDelete(xml: string, maxKeys: number): { quiet: boolean; keys: string[] } {
  const content = rootContent(xml, 'Delete')
  const objects = elements(content, 'Object')
  if (objects.length === 0) throw malformed('no <Object>')
  if (objects.length > maxKeys) throw malformed(`more than ${maxKeys} objects`)
  const keys = objects.map((object) => {
    const key = textOf(object, 'Key')
    if (key === undefined || key === '') throw malformed('each <Object> needs a <Key>')
    if (textOf(object, 'VersionId') !== undefined) throw new S3Error('NotImplemented', 'VersionId in DeleteObjects is not implemented by this gateway')
    return key
  })
  return { quiet: textOf(withoutElements(content, 'Object'), 'Quiet')?.trim() === 'true', keys }
}
