import { InvalidKeyError } from '../errors.ts'

/** S3's limit on key length, in UTF-8 bytes; we apply it to every store. */
export const MAX_KEY_BYTES = 1024

/**
 * Decodes the raw (still percent-encoded) object path of a request into a key and checks
 * that it is safe for every store: no empty, `.` or `..` segments, no encoded slash or
 * backslash, no NUL or control characters, valid UTF-8 (else decoding fails), at most 1024 bytes.
 * Runs before any store call; throws `InvalidKeyError` (→ 400).
 */
export function decodeKey(rawPath: string): string {
  if (rawPath.length === 0) throw new InvalidKeyError('empty object key')
  // An encoded slash would let one key alias another ("a%2Fb" vs "a/b") and smuggle
  // separators past the segment checks below.
  if (/%2f|%5c/i.test(rawPath)) throw new InvalidKeyError('encoded slash in object key')
  let key: string
  try {
    key = decodeURIComponent(rawPath)
  } catch {
    throw new InvalidKeyError('malformed percent-encoding in object key')
  }
  validateKey(key)
  return key
}

/** Checks an already-decoded key (from a presigned payload, a test or the CLI). */
export function validateKey(key: string): void {
  if (key.length === 0) throw new InvalidKeyError('empty object key')
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new InvalidKeyError(`object key longer than ${MAX_KEY_BYTES} bytes`)
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) throw new InvalidKeyError('control character in object key')
  if (key.includes('\\')) throw new InvalidKeyError('backslash in object key')
  if (key.startsWith('/')) throw new InvalidKeyError('absolute object key')
  for (const segment of key.split('/')) {
    if (segment === '') throw new InvalidKeyError('empty path segment in object key')
    if (segment === '.' || segment === '..') throw new InvalidKeyError('dot segment in object key')
  }
}
