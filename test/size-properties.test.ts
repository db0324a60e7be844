/**
 * Properties of config sizes (src/config/size.ts): the prefixes of IEC 80000-13 (binary) and
 * the SI (decimal), read exactly and rounded down to whole bytes.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { parseSize } from '../src/config/size.ts'

const RUNS = { numRuns: 1000 }

const FACTORS = { b: 1n, kb: 10n ** 3n, mb: 10n ** 6n, gb: 10n ** 9n, tb: 10n ** 12n, kib: 2n ** 10n, mib: 2n ** 20n, gib: 2n ** 30n, tib: 2n ** 40n }
/** A unit in any letter case, e.g. `MiB`, `mib`, `KB`. */
const unit = fc
  .tuple(fc.constantFrom(...(Object.keys(FACTORS) as Array<keyof typeof FACTORS>)), fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }))
  .map(([name, upper]) => ({ name, text: [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('') }))
const space = fc.constantFrom('', ' ', '  ', '\t')
const whole = fc.oneof(fc.bigInt({ min: 0n, max: 10_000n }), fc.bigInt({ min: 0n, max: 2n ** 60n }))
const digits = fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 6 })

const expected = (bytes: bigint) => (bytes <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(bytes) : undefined)

describe('config size properties (IEC 80000-13, SI)', () => {
  test('IEC 80000-13 and SI: KiB, MiB, GiB, TiB are powers of 1024 and kB, MB, GB, TB of 1000, in any letter case, with optional spaces', () => {
    fc.assert(
      fc.property(whole, unit, space, space, space, (n, u, a, b, c) => {
        assert.equal(parseSize(`${a}${n}${b}${u.text}${c}`), expected(n * FACTORS[u.name]))
      }),
      RUNS,
    )
  })

  test('a fractional size is exact, rounded down to a whole byte (no floating-point loss: 1.001kB is 1001)', () => {
    fc.assert(
      fc.property(whole, digits, unit, (n, fraction, u) => {
        const exact = ((n * 10n ** BigInt(fraction.length) + BigInt(fraction)) * FACTORS[u.name]) / 10n ** BigInt(fraction.length)
        assert.equal(parseSize(`${n}.${fraction}${u.text}`), expected(exact))
      }),
      RUNS,
    )
  })

  test('a number is a size when it is a safe non-negative integer, and is then itself', () => {
    fc.assert(
      fc.property(fc.oneof(fc.maxSafeInteger(), fc.double()), (n) => {
        assert.equal(parseSize(n), Number.isSafeInteger(n) && n >= 0 ? n : undefined)
      }),
      RUNS,
    )
  })

  test('any text is a safe non-negative integer or not a size, never an exception', () => {
    const sizeLike = fc.string({ unit: fc.constantFrom(...'0123456789.kKmMgGtTiIbB -e+') })
    fc.assert(
      fc.property(fc.oneof(fc.string(), sizeLike), (text) => {
        const bytes = parseSize(text)
        if (bytes !== undefined) assert.ok(Number.isSafeInteger(bytes) && bytes >= 0, text)
      }),
      RUNS,
    )
  })
})
