/** The value types every config section shares: unset, sizes, durations, booleans, numbers, addresses. */
import { z } from 'zod'
import { parseDuration } from './duration.ts'
import { parseSize } from './size.ts'

/** YAML `null`, a missing key and `FOO=` in the environment all mean "unset". */
export const unset = (value: unknown) => (value === null || value === '' ? undefined : value)

export const optionalString = z.preprocess(unset, z.string().min(1).optional())

export const size = z.preprocess(
  unset,
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const bytes = parseSize(value)
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: 'not a size (examples: 4096, 512MiB, 2GB, 1.5GiB)' })
      return z.NEVER
    }
    return bytes
  }),
)

/** A duration (`30s`, `10m`, `1h`, `7d`, or seconds), in milliseconds. */
export const duration = z.preprocess(
  unset,
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value)
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: 'not a duration (examples: 30s, 10m, 1h, 7d, or plain seconds)' })
      return z.NEVER
    }
    return ms
  }),
)

export const bool = z.preprocess((value) => {
  const v = unset(value)
  if (typeof v !== 'string') return v
  if (/^(true|1|yes|on)$/i.test(v)) return true
  if (/^(false|0|no|off)$/i.test(v)) return false
  return v
}, z.boolean())

export const number = z.preprocess((value) => {
  const v = unset(value)
  return typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v
}, z.number())

/** `host:port`, `[v6]:port`, `:port` or a bare port (no host: all interfaces). */
export const hostPort = z.string().transform((value, ctx) => {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value)
  const port = match ? Number(match[3]) : NaN
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: 'expected host:port, e.g. "0.0.0.0:8080"' })
    return z.NEVER
  }
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port }
})
export const address = <T extends z.ZodType>(inner: T) => z.preprocess((value) => (typeof value === 'number' ? String(value) : unset(value)), inner)

export const listen = address(z.string().default('0.0.0.0:8080').pipe(hostPort))

