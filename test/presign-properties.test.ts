/**
 * Properties of the presigned-link decoder (src/auth/presign.ts, src/auth/keys.ts): base64url
 * of RFC 4648, Ed25519 of RFC 8032, a JSON payload (RFC 8259) that is parsed only once signed.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { SIGNABLE_METHODS, signPayload, verifySignature } from '../src/auth/presign.ts'
import { createVerifier, decodeBase64Url, encodeBase64Url, generateKeyPair, sign } from '../src/auth/keys.ts'
import { AuthError } from '../src/errors.ts'

const RUNS = { numRuns: 300 }
const keys = generateKeyPair()
const secret = decodeBase64Url(keys.private_key)!
const verifiers = [createVerifier(decodeBase64Url(keys.public_key)!)]
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** Runs `verifySignature`, turning an AuthError into its reason; any other error escapes. */
function outcome(sig: string) {
  try {
    return verifySignature(sig, verifiers)
  } catch (error) {
    if (error instanceof AuthError) return error.reason
    throw error
  }
}

/** A `sig` whose signature is valid for these payload bytes, whatever they are. */
const signed = (bytes: Uint8Array) => `${encodeBase64Url(bytes)}.${encodeBase64Url(sign(bytes, secret))}`

const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: fc.constantFrom('/', '.', '%', ' ', 'a', '\u0000', 'é', '\ud800') }))
const payload = fc.record({
  v: fc.constant(1 as const),
  exp: fc.oneof(fc.nat({ max: 2 ** 32 }), fc.maxSafeInteger()),
  m: fc.constantFrom(...SIGNABLE_METHODS),
  b: text,
  p: text,
})

describe('presigned link properties (RFC 4648, RFC 8032)', () => {
  test('RFC 4648 §5: base64url round-trips any bytes, in the URL-safe alphabet, without padding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const encoded = encodeBase64Url(bytes)
        assert.match(encoded, /^[A-Za-z0-9_-]*$/)
        assert.equal(encoded.length, Math.ceil((bytes.length * 4) / 3))
        assert.deepEqual(decodeBase64Url(encoded), bytes)
      }),
      RUNS,
    )
  })

  test('RFC 4648 §3.5: only the canonical spelling decodes (pad bits zero), so one payload has one spelling', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: fc.constantFrom(...ALPHABET), maxLength: 12 }), fc.string({ maxLength: 12 })), (s) => {
        const bytes = decodeBase64Url(s)
        if (bytes !== undefined) assert.equal(encodeBase64Url(bytes), s)
      }),
      RUNS,
    )
  })

  test('RFC 8032 §5.1.7, RFC 8259: a link signed with the key verifies and decodes to the very fields signed', () => {
    fc.assert(
      fc.property(payload, (p) => assert.deepEqual(verifySignature(signPayload(p, keys.private_key), verifiers), { ...p })),
      RUNS,
    )
  })

  test('RFC 8032 §5.1.7: changing any one character of a signed link is refused with an AuthError', () => {
    const tampered = fc.tuple(payload, fc.nat(), fc.constantFrom(...ALPHABET, '.', '=', '+', '/')).map(([p, at, c]) => {
      const sig = signPayload(p, keys.private_key)
      const i = at % sig.length
      return { sig, changed: sig.slice(0, i) + c + sig.slice(i + 1) }
    })
    fc.assert(
      fc.property(tampered, ({ sig, changed }) => {
        fc.pre(changed !== sig) // the same character again is no change
        const result = outcome(changed)
        assert.ok(result === 'bad signature' || result === 'malformed signature', String(result))
      }),
      RUNS,
    )
  })

  test('RFC 8259: signed bytes that are not a v1 payload (not JSON, not an object, wrong types) are refused with an AuthError, never a crash', () => {
    const loose = fc.record(
      { v: fc.oneof(fc.constant(1), fc.jsonValue()), exp: fc.oneof(fc.maxSafeInteger(), fc.double(), fc.jsonValue()), m: fc.oneof(fc.constantFrom(...SIGNABLE_METHODS), fc.jsonValue()), b: fc.oneof(fc.string(), fc.jsonValue()), p: fc.oneof(fc.string(), fc.jsonValue()) },
      { requiredKeys: [] },
    )
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v) ?? '')),
      loose.map((v) => new TextEncoder().encode(JSON.stringify(v))),
    )
    fc.assert(
      fc.property(bytes, (b) => {
        const result = outcome(signed(b))
        if (typeof result === 'string') return
        assert.equal(result.v, 1)
        assert.ok(Number.isSafeInteger(result.exp))
        for (const field of [result.m, result.b, result.p]) assert.equal(typeof field, 'string')
      }),
      RUNS,
    )
  })

  test('RFC 4648, RFC 8032: any sig value at all is a verified payload or an AuthError, never another exception', () => {
    const shaped = fc.tuple(fc.string({ unit: fc.constantFrom(...ALPHABET) }), fc.string({ unit: fc.constantFrom(...ALPHABET), minLength: 80, maxLength: 90 })).map(([a, b]) => `${a}.${b}`)
    fc.assert(
      fc.property(fc.oneof(fc.string(), shaped), (sig) => {
        const result = outcome(sig)
        assert.equal(typeof result, 'string') // nobody guesses a signature
      }),
      RUNS,
    )
  })
})
