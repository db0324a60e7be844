/**
 * Durations in configuration: `30s`, `10m`, `1h`, `7d`, `250ms`, or plain seconds (`30`, `1.5`).
 * One parser for every duration key (cache freshness, link lifetimes), so they all read alike.
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/i

/**
 * Milliseconds in `value`, or undefined when it is not a duration (negative, empty, an unknown
 * unit, or too large to be a safe integer of milliseconds). A number is seconds.
 *
 * @example
 * parseDuration('10m') // 600000
 * parseDuration(30)    // 30000
 * parseDuration('1w')  // undefined
 */
export function parseDuration(value: string | number): number | undefined {
  let amount: number
  let unit = 's'
  if (typeof value === 'number') {
    amount = value
  } else {
    const match = DURATION.exec(value.trim())
    if (!match) return undefined
    amount = Number(match[1])
    unit = (match[2] ?? 's').toLowerCase()
  }
  if (!Number.isFinite(amount) || amount < 0) return undefined
  const ms = Math.round(amount * UNIT_MS[unit]!)
  return Number.isSafeInteger(ms) ? ms : undefined
}

/**
 * Whole seconds in `value` (link lifetimes, `cachegate sign` offsets), or undefined when it is
 * not a duration or not a whole number of seconds.
 *
 * @example
 * parseSeconds('7d') // 604800
 * parseSeconds('1500ms') // undefined
 */
export function parseSeconds(value: string | number): number | undefined {
  const ms = parseDuration(value)
  return ms === undefined || ms % 1000 !== 0 ? undefined : ms / 1000
}
