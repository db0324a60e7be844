const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
}

/**
 * Parses a human-readable size: `512MiB`, `2GB`, `1.5GiB`, `4096`, `10 kb`.
 * Decimal units (kB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB...) of 1024.
 * Returns undefined when the text is not a size.
 *
 * @example
 * parseSize('1.5GiB') // 1610612736
 */
export function parseSize(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : undefined
  const match = /^\s*(\d+)(?:\.(\d+))?\s*([a-zA-Z]*)\s*$/.exec(input)
  if (!match) return undefined
  const unit = UNITS[match[3]!.toLowerCase()]
  if (unit === undefined) return undefined
  // Exact decimal arithmetic, rounded down: in floating point 1.001 × 1000 is 1000.999…,
  // so `1.001kB` would come out one byte short.
  const fraction = match[2] ?? ''
  const bytes = (BigInt(match[1]! + fraction) * BigInt(unit)) / 10n ** BigInt(fraction.length)
  return bytes <= Number.MAX_SAFE_INTEGER ? Number(bytes) : undefined
}
