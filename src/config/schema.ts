import { z } from 'zod'
import { decodeBase64Url, isUsablePublicKey, publicKeyOf } from '../auth/keys.ts'
import { parseTrustedProxies } from '../http/client-address.ts'
import { parseSize } from './size.ts'

/** YAML `null`, a missing key and `FOO=` in the environment all mean "unset". */
const unset = (value: unknown) => (value === null || value === '' ? undefined : value)

const optionalString = z.preprocess(unset, z.string().min(1).optional())

const size = z.preprocess(
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

const bool = z.preprocess((value) => {
  const v = unset(value)
  if (typeof v !== 'string') return v
  if (/^(true|1|yes|on)$/i.test(v)) return true
  if (/^(false|0|no|off)$/i.test(v)) return false
  return v
}, z.boolean())

const number = z.preprocess((value) => {
  const v = unset(value)
  return typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v
}, z.number())

/** `host:port`, `[v6]:port`, `:port` or a bare port (no host: all interfaces). */
const hostPort = z.string().transform((value, ctx) => {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value)
  const port = match ? Number(match[3]) : NaN
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: 'expected host:port, e.g. "0.0.0.0:8080"' })
    return z.NEVER
  }
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port }
})
const address = <T extends z.ZodType>(inner: T) => z.preprocess((value) => (typeof value === 'number' ? String(value) : unset(value)), inner)

const listen = address(z.string().default('0.0.0.0:8080').pipe(hostPort))

const key = (what: string) =>
  z.preprocess(
    unset,
    z
      .string()
      .optional()
      .refine((value) => value === undefined || decodeBase64Url(value)?.length === 32, {
        message: `${what} must be 32 bytes of base64url without padding (see \`cachegate keygen\`)`,
      }),
  )

/** A key that verifies signatures: also a canonical point on the curve, not of small order. */
const publicKey = (what: string) =>
  // A key of the wrong length already has its problem reported by key(): one message each.
  key(what).refine((value) => value === undefined || decodeBase64Url(value)?.length !== 32 || isUsablePublicKey(value), {
    message: `${what} is not a valid Ed25519 public key (small-order or not on the curve)`,
  })

const auth = z
  .object({
    public_key: publicKey('public_key'),
    /** Older keys still accepted for verification, so a key can be rotated without breaking links. */
    previous_public_keys: z.preprocess(unset, z.array(publicKey('previous_public_keys entry')).default([])),
    private_key: key('private_key'),
    bearer_token: optionalString.refine((value) => value === undefined || value.length >= 16, {
      message: 'bearer_token must be at least 16 characters',
    }),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (!value.public_key && !value.bearer_token) {
      ctx.addIssue({ code: 'custom', message: 'set public_key (presigned links) or bearer_token, or both', path: ['public_key'] })
    }
    if (value.private_key && value.public_key && publicKeyOf(value.private_key) !== value.public_key) {
      ctx.addIssue({ code: 'custom', message: 'private_key does not belong to public_key', path: ['private_key'] })
    }
  })

const MiB = 2 ** 20
const cache = z
  .object({
    max_memory: size.default(512 * MiB),
    max_object_size: size.default(64 * MiB),
    max_disk: size.default(0),
    disk_path: optionalString.default('./cache'),
    max_upload_size: size.default(5 * 2 ** 30),
    /** Objects over max_object_size are cached in pages of this size (0: streamed, not cached). */
    page_size: size.optional(),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (value.max_object_size > value.max_memory) {
      ctx.addIssue({ code: 'custom', message: 'must not exceed cache.max_memory', path: ['max_object_size'] })
    }
    if (value.page_size !== undefined && value.page_size > value.max_memory) {
      ctx.addIssue({ code: 'custom', message: 'must not exceed cache.max_memory', path: ['page_size'] })
    }
  })
  // Default: Cachey's 16 MiB, or an eighth of a small memory tier so pages can be held.
  .transform((value) => ({ ...value, page_size: value.page_size ?? Math.min(16 * MiB, Math.floor(value.max_memory / 8)) }))

const sentry = z
  .object({
    dsn: optionalString,
    environment: optionalString,
    release: optionalString,
    traces_sample_rate: number.pipe(z.number().min(0).max(1)).default(0.1),
    debug: bool.default(false),
  })
  .strict()

/** A count or rate where 0 turns the protection off. */
const nonNegative = (max: number) => number.pipe(z.number().min(0).max(max))

/** Protections against clients that hold connections or flood failed authentications. */
const limits = z
  .object({
    /** Open connections accepted at once (`server.maxConnections`); 0: unlimited. */
    max_connections: nonNegative(1_000_000).pipe(z.number().int()).default(10_000),
    /** An upload averaging less than this over a window is cut; 0: off. */
    min_upload_bytes_per_second: size.pipe(z.number().max(2 ** 30)).default(1024),
    /** The window the upload rate is measured over. */
    upload_rate_window_seconds: number.pipe(z.number().positive().max(3600)).default(30),
    /** Failed authentications a client address may sustain per second; 0: no limit. */
    failed_auth_per_second: nonNegative(1_000_000).default(20),
    /** Failed authentications a client address may make in a burst; 0: no limit. */
    failed_auth_burst: nonNegative(1_000_000).pipe(z.number().int()).default(100),
  })
  .strict()

/** SIGTERM: not ready for `drain_seconds` (balancers notice), then in-flight requests get `grace_seconds`. */
const shutdown = z
  .object({
    drain_seconds: number.pipe(z.number().min(0).max(3600)).default(5),
    grace_seconds: number.pipe(z.number().min(0).max(3600)).default(30),
  })
  .strict()

/** HTTPS: PEM files (reloaded on SIGHUP), or a self-signed certificate for development; unset: plain HTTP. */
const tls = z
  .object({
    cert: optionalString,
    key: optionalString,
    self_signed: bool.default(false),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (Boolean(value.cert) !== Boolean(value.key)) ctx.addIssue({ code: 'custom', message: 'set both tls.cert and tls.key, or neither', path: [value.cert ? 'key' : 'cert'] })
    if (value.self_signed && value.cert) ctx.addIssue({ code: 'custom', message: 'self_signed generates its own certificate: remove tls.cert and tls.key, or self_signed', path: ['self_signed'] })
  })

/** Other stores holding the same keys, read when this one fails or lacks a key (see `with-fallback.ts`). */
const fallback = z.preprocess(unset, z.array(z.string().min(1)).optional())

const fsStore = z.object({ type: z.literal('fs'), root: z.string().min(1), fallback }).strict()
const s3Store = z
  .object({
    type: z.literal('s3'),
    fallback,
    bucket: z.string().min(3).max(63),
    region: optionalString.default('us-east-1'),
    access_key: optionalString,
    secret_key: optionalString,
    endpoint: optionalString.refine((value) => value === undefined || URL.canParse(value), { message: 'must be a URL' }),
    allow_http: bool.default(false),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (Boolean(value.access_key) !== Boolean(value.secret_key)) {
      ctx.addIssue({ code: 'custom', message: 'set both access_key and secret_key, or neither (default credential chain)', path: ['secret_key'] })
    }
    if (value.endpoint?.startsWith('http://') && !value.allow_http) {
      ctx.addIssue({ code: 'custom', message: 'is plain http: set allow_http: true to permit it', path: ['endpoint'] })
    }
  })
const azureStore = z
  .object({
    type: z.literal('azure'),
    fallback,
    container: z.string().min(3).max(63),
    connection_string: z.string().min(1),
  })
  .strict()

const store = z.discriminatedUnion('type', [fsStore, s3Store, azureStore])

/** Store ids appear in URLs as the first path segment. */
const STORE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/

/** Every `fallback` entry names another configured store, and no chain of them comes back: each problem once. */
function checkFallbacks(stores: Record<string, { fallback?: string[] | undefined }>, ctx: z.RefinementCtx): void {
  for (const [id, { fallback = [] }] of Object.entries(stores)) {
    fallback.forEach((other, i) => {
      if (fallback.indexOf(other) !== i) ctx.addIssue({ code: 'custom', message: `store "${other}" is listed twice`, path: [id, 'fallback', i] })
      else if (other === id) ctx.addIssue({ code: 'custom', message: `store "${id}" cannot fall back to itself`, path: [id, 'fallback', i] })
      else if (!Object.hasOwn(stores, other)) ctx.addIssue({ code: 'custom', message: `unknown store "${other}"`, path: [id, 'fallback', i] })
    })
  }
  // Depth-first, each store visited once (linear in stores and entries): reaching a store still
  // on the current path closes a cycle, reported as that part of the path.
  const state = new Map<string, 'on-path' | 'done'>()
  const path: string[] = []
  const visit = (id: string): void => {
    state.set(id, 'on-path')
    path.push(id)
    for (const other of new Set(stores[id]?.fallback ?? [])) {
      if (other === id || !Object.hasOwn(stores, other)) continue
      if (state.get(other) === 'on-path') {
        const cycle = path.slice(path.indexOf(other))
        ctx.addIssue({ code: 'custom', message: `fallback cycle: ${[...cycle, other].join(' → ')}`, path: [other, 'fallback'] })
      } else if (!state.has(other)) visit(other)
    }
    path.pop()
    state.set(id, 'done')
  }
  for (const id of Object.keys(stores)) if (!state.has(id)) visit(id)
}

/** Addresses or CIDRs of the balancers in front: their `X-Forwarded-For` names the client. */
const trustProxy = z.preprocess(
  (value) => (typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : (unset(value) ?? [])),
  z.array(z.string()).superRefine((entries, ctx) => {
    entries.forEach((entry, i) => {
      const parsed = parseTrustedProxies([entry])
      if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error, path: [i] })
    })
  }),
)

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const

export const configSchema = z
  .object({
    listen,
    trust_proxy: trustProxy,
    tls: z.preprocess((v) => v ?? {}, tls),
    auth,
    cache: z.preprocess((v) => v ?? {}, cache),
    sentry: z.preprocess((v) => v ?? {}, sentry),
    log: z.preprocess(
      (v) => v ?? {},
      z
        .object({
          level: z.preprocess(unset, z.enum(LOG_LEVELS).default('info')),
          /** One JSON line per request (src/http/access-log.ts); false installs nothing. */
          access: bool.default(true),
        })
        .strict(),
    ),
    shutdown: z.preprocess((v) => v ?? {}, shutdown),
    upstream: z.preprocess(
      (v) => v ?? {},
      z
        .object({
          /** Seconds a store may take to answer, or stay silent mid-body, before a 504. */
          timeout_seconds: number.pipe(z.number().positive().max(3600)).default(30),
          /** Hedge a GET with no headers after this quantile of recent times to headers; 0: off. */
          hedge_quantile: number.pipe(z.number().min(0).lt(1, 'must be below 1 (0 turns hedging off)')).default(0.99),
          /** Times to headers a store must have answered before its GETs are hedged. */
          hedge_min_samples: number.pipe(z.number().int().min(1)).default(100),
          /** At most this fraction of a store's GETs over a sliding minute are hedged. */
          hedge_max_ratio: number.pipe(z.number().min(0).max(1)).default(0.05),
        })
        .strict(),
    ),
    limits: z.preprocess((v) => v ?? {}, limits),
    metrics: z.preprocess(
      (v) => v ?? {},
      z
        .object({
          /** A second address for /stats and /metrics (e.g. 127.0.0.1:9090); the public listener then answers 404 for them. */
          listen: address(hostPort.optional()),
        })
        .strict(),
    ),
    stores: z
      .record(z.string().regex(STORE_ID, 'store id must be letters, digits, ".", "_" or "-"'), store)
      .refine((value) => Object.keys(value).length > 0, {
        message: 'at least one store is required',
      })
      .superRefine(checkFallbacks),
  })
  .strict()

export type Config = z.output<typeof configSchema>
export type StoreConfig = Config['stores'][string]
