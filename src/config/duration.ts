const UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }

/**
 * Parses a duration into whole seconds: `3600` (seconds), `30s`, `10m`, `1h`, `7d`.
 * Returns undefined when the value is not one (negative, fractional, unknown unit, too large).
 *
 * @example
 * parseDuration('7d') // 604800
 */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined
  const match = /^\s*(\d+)\s*([smhd]?)\s*$/i.exec(value)
  if (!match) return undefined
  const seconds = Number(match[1]) * UNITS[match[2]!.toLowerCase()]!
  return Number.isSafeInteger(seconds) ? seconds : undefined
}
