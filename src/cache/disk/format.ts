/**
 * The disk tier's file format, as pure functions (no fs): what an entry file holds and where
 * it lives.
 *
 * Entry file layout (format 1): `CGD1`, a uint32 BE header length, the header as UTF-8 JSON
 * (`Header` below), then the body. Fields added since (`storedAt`) are optional, so files of
 * either age read with either version of this module: a reader ignores unknown fields. One file per entry at `<root>/ab/cd/<sha256(key)>.<rand>`;
 * the random suffix makes every write a new file, so a hit handed out before an overwrite
 * keeps reading the version it was given (or fails with ENOENT), never a mix of two.
 */
import { createHash } from 'node:crypto'
import path from 'node:path'
import type { ObjectMeta } from '../../stores/types.ts'

export const MAGIC = Buffer.from('CGD1')
export const FORMAT_VERSION = 1
/** Magic and header length. */
export const PREFIX_BYTES = 8
/** Headers longer than this are unreadable at recovery, so they are never written. */
export const MAX_HEADER_BYTES = 64 * 1024
/** Files are charged in whole filesystem blocks: what they really take on disk. */
export const BLOCK_BYTES = 4096
export const EMPTY_SHA256 = createHash('sha256').digest('hex')

const FAN_NAME = /^[0-9a-f]{2}$/
const ENTRY_NAME = /^([0-9a-f]{64})\.[0-9a-f]{12}$/
const TEMP_NAME = /^[0-9a-f]{64}\.[0-9a-f]{12}\.tmp$/
const SHA256_HEX = /^[0-9a-f]{64}$/

export interface Header {
  v: number
  key: string
  size: number
  contentType: string
  etag?: string
  lastModified?: string
  sha256: string
  /** Write time (ms since epoch): on recovery, the newest of two files for one key wins. */
  written: number
  /**
   * When the object was first stored (ms since epoch), present only when it differs from
   * `written` (the entry copies one stored earlier). Absent, as in every file written before
   * this field existed, it is `written`.
   */
  storedAt?: number
}

export const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex')

/** What a file of `fileSize` bytes is charged against the bound: whole blocks, at least one. */
export const charge = (fileSize: number): number => Math.ceil(Math.max(fileSize, 1) / BLOCK_BYTES) * BLOCK_BYTES

/** The header for `key` as described by `meta`, but its digest: everything known before the body is hashed. */
export function headerOf(key: string, meta: ObjectMeta, written: number, storedAt = written): Omit<Header, 'sha256'> {
  const { size, contentType, etag, lastModified } = meta
  const header: Omit<Header, 'sha256'> = { v: FORMAT_VERSION, key, size, contentType, etag, lastModified: lastModified?.toISOString(), written }
  if (storedAt !== written) header.storedAt = storedAt
  return header
}

/** When the entry's object was stored (ms since epoch). */
export const storedAtOf = (header: Omit<Header, 'sha256'>): number => header.storedAt ?? header.written

/** The metadata a header describes; absent fields stay absent. */
export function metaOf(header: Header): ObjectMeta {
  const meta: ObjectMeta = { size: header.size, contentType: header.contentType }
  if (header.etag !== undefined) meta.etag = header.etag
  if (header.lastModified !== undefined) meta.lastModified = new Date(header.lastModified)
  return meta
}

/** Magic, length and JSON header: the bytes an entry file starts with. */
export function encodeHeader(header: Header): Buffer {
  const json = Buffer.from(JSON.stringify(header))
  const head = Buffer.alloc(PREFIX_BYTES + json.byteLength)
  MAGIC.copy(head)
  head.writeUInt32BE(json.byteLength, 4)
  json.copy(head, PREFIX_BYTES)
  return head
}

/**
 * Length of `encodeHeader(header)` for any digest: the digest is always 64 hex digits, so a
 * write can be sized (and refused) before its body is hashed.
 */
export function encodedLength(header: Omit<Header, 'sha256'>): number {
  return encodeHeader({ ...header, sha256: EMPTY_SHA256 }).byteLength
}

/**
 * Parses the start of an entry file (at least its prefix and header). Undefined when the
 * magic, the length or any header field is wrong; `offset` is where the body starts.
 */
export function decodeHeader(bytes: Buffer): { header: Header; offset: number } | undefined {
  if (bytes.byteLength < PREFIX_BYTES || !bytes.subarray(0, 4).equals(MAGIC)) return undefined
  const length = bytes.readUInt32BE(4)
  const offset = PREFIX_BYTES + length
  if (length > MAX_HEADER_BYTES || offset > bytes.byteLength) return undefined
  const header = parseHeader(bytes.subarray(PREFIX_BYTES, offset))
  return header && { header, offset }
}

function parseHeader(bytes: Buffer): Header | undefined {
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const h = value as Record<string, unknown>
  const optionalString = (v: unknown) => v === undefined || typeof v === 'string'
  const valid =
    h.v === FORMAT_VERSION &&
    typeof h.key === 'string' &&
    h.key !== '' &&
    typeof h.size === 'number' &&
    Number.isSafeInteger(h.size) &&
    h.size >= 0 &&
    typeof h.contentType === 'string' &&
    typeof h.sha256 === 'string' &&
    SHA256_HEX.test(h.sha256) &&
    (h.size > 0 || h.sha256 === EMPTY_SHA256) &&
    typeof h.written === 'number' &&
    Number.isFinite(h.written) &&
    (h.storedAt === undefined || (typeof h.storedAt === 'number' && Number.isFinite(h.storedAt))) &&
    optionalString(h.etag) &&
    optionalString(h.lastModified) &&
    (h.lastModified === undefined || !Number.isNaN(Date.parse(h.lastModified as string)))
  return valid ? (h as unknown as Header) : undefined
}

/** `<root>/ab/cd/<sha256(key)>.<suffix>`, `suffix` being 12 hex digits (random per write). */
export function entryPath(root: string, key: string, suffix: string): string {
  const hash = sha256(key)
  return path.join(root, hash.slice(0, 2), hash.slice(2, 4), `${hash}.${suffix}`)
}

export const tempPath = (file: string): string => `${file}.tmp`

/** A fan-out directory name (`ab`, `cd`). */
export const isFanName = (name: string): boolean => FAN_NAME.test(name)

/** The key hash an entry file name carries, if `name` is one this tier writes. */
export function hashOfEntryName(name: string): string | undefined {
  return ENTRY_NAME.exec(name)?.[1]
}

export const isTempName = (name: string): boolean => TEMP_NAME.test(name)
