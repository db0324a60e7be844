import { z } from 'zod'
import { decodeBase64Url, isUsablePublicKey, publicKeyOf } from '../auth/keys.ts'
import { parseTrustedProxies } from '../http/client-address.ts'
import { CORS_METHODS, parseOriginRule } from '../http/cors/origins.ts'
import { parseDuration } from './duration.ts'
import { keyEntry, tokenEntry, uniqueIds, wholeSeconds } from './auth-entries.ts'
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
    /** Hex SHA-256 of the token that may call `/_admin/*` (purge); unset: no admin endpoints. */
    admin_token_sha256: optionalString.refine((value) => value === undefined || /^[0-9a-fA-F]{64}$/.test(value), {
      message: 'admin_token_sha256 must be 64 hex digits (the SHA-256 of the token)',
    }),
    /** Public keys with ids, verifying links alongside public_key (`kid` picks one). */
    keys: z.preprocess(unset, z.array(keyEntry).default([]).superRefine(uniqueIds)),
    /** Scoped bearer tokens, held as SHA-256 digests. */
    tokens: z.preprocess(
      unset,
      z
        .array(tokenEntry)
        .default([])
        .superRefine(uniqueIds)
        .superRefine((entries, ctx) => {
          entries.forEach(({ sha256 }, i) => {
            if (entries.findIndex((e) => e.sha256 === sha256) !== i) ctx.addIssue({ code: 'custom', message: 'the same token is listed twice', path: [i, 'sha256'] })
          })
        }),
    ),
    /** Links expiring further away than this (seconds) are refused. */
    max_link_lifetime: wholeSeconds.optional(),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (!value.public_key && !value.bearer_token && value.keys.length === 0 && value.tokens.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'set public_key or keys (presigned links), bearer_token or tokens, or several', path: ['public_key'] })
    }
    const publicKeys = [value.public_key, ...value.keys.map((k) => k.public_key)].filter(Boolean)
    if (value.private_key && publicKeys.length > 0 && !publicKeys.includes(publicKeyOf(value.private_key))) {
      ctx.addIssue({ code: 'custom', message: value.keys.length ? 'private_key belongs to neither public_key nor any of keys' : 'private_key does not belong to public_key', path: ['private_key'] })
    }
  })

/** The freshness keys, globally under `cache` and per store under `stores.<id>.cache`. */
const freshnessKeys = {
  /** A hit older than this is revalidated in the background; unset: never. */
  revalidate_after: duration.optional(),
  /** Past revalidate_after + max_stale a hit waits for its revalidation; unset: never. */
  max_stale: duration.optional(),
  /** A 404 from the store is remembered this long; 0: off. */
  negative_ttl: duration.optional(),
}
const storeCache = z.preprocess(unset, z.object(freshnessKeys).strict().optional())

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
    /** Freshness (issue 13): all off by default, objects are immutable. Per store: `stores.<id>.cache`. */
    ...freshnessKeys,
    /** Share of hits checked against the store in the background (0–1). */
    verify_sample_rate: number.pipe(z.number().min(0).max(1)).default(0),
    /** Every read from the store, still filling and checking the cache (a trial mode). */
    verify_only: bool.default(false),
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

/** A header name (RFC 9110 §5.1 token; `*` is one), compared in lower case. */
const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a header name')
  .transform((value) => value.toLowerCase())
const list = <T extends z.ZodType>(item: T) => z.preprocess(unset, z.array(item).optional())

/**
 * `cors:` (every store) and `stores.<id>.cors:` (that store; keys it leaves out come from the
 * top level, then from the defaults in `src/http/cors/policy.ts`). No section: no CORS headers.
 */
const cors = z.preprocess(
  unset,
  z
    .object({
      allowed_origins: list(
        z.string().transform((value, ctx) => {
          try {
            parseOriginRule(value)
          } catch (error) {
            ctx.addIssue({ code: 'custom', message: (error as Error).message })
          }
          return value
        }),
      ),
      allowed_methods: list(z.string().transform((value) => value.toUpperCase()).pipe(z.enum(CORS_METHODS, { error: `must be one of ${CORS_METHODS.join(', ')}` }))),
      /** `*` allows any request header (the ones asked for are echoed, Authorization included). */
      allowed_headers: list(headerName),
      expose_headers: list(headerName),
      max_age_seconds: number.pipe(z.number().int().min(0).max(86_400)).optional(),
      allow_credentials: bool.optional(),
      allow_private_network: bool.optional(),
    })
    .strict()
    .optional(),
)

/** Other stores holding the same keys, read when this one fails or lacks a key (see `with-fallback.ts`). */
const fallback = z.preprocess(unset, z.array(z.string().min(1)).optional())

const fsStore = z.object({ type: z.literal('fs'), root: z.string().min(1), fallback, cors, cache: storeCache }).strict()
const s3Store = z
  .object({
    type: z.literal('s3'),
    fallback,
    cors,
    cache: storeCache,
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
    cors,
    cache: storeCache,
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

const S3_METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'] as const

/** One S3 access key (issue 15): SigV4-signed requests made with it may do what its scope says. */
const s3Credential = z
  .object({
    access_key_id: z.string().regex(/^[A-Za-z0-9._-]{3,128}$/, 'access_key_id must be 3-128 letters, digits, ".", "_" or "-"'),
    secret_access_key: z.string().min(16, 'secret_access_key must be at least 16 characters'),
    /** Store ids this key may use; `*` for all. */
    buckets: z.array(z.string().min(1)).min(1, 'list the store ids this key may use (or "*")'),
    methods: z.preprocess(
      (v) => (Array.isArray(v) ? v.map((m) => (typeof m === 'string' ? m.toUpperCase() : m)) : v),
      z.array(z.enum(S3_METHODS)).min(1).default([...S3_METHODS]),
    ),
    prefix: z.preprocess((v) => v ?? '', z.string()),
  })
  .strict()

/** The S3-compatible API (issue 15); unset: SigV4-signed requests are refused like any other unknown credential (401). */
const s3Api = z
  .object({
    region: z.preprocess(unset, z.string().regex(/^[a-z0-9-]{1,64}$/, 'region must be lower-case letters, digits and "-"').default('us-east-1')),
    credentials: z.array(s3Credential).min(1, 'at least one credential'),
  })
  .strict()
  .superRefine((value, ctx) => {
    const seen = new Set<string>()
    for (const [i, credential] of value.credentials.entries()) {
      if (seen.has(credential.access_key_id)) ctx.addIssue({ code: 'custom', message: 'access_key_id listed twice', path: ['credentials', i, 'access_key_id'] })
      seen.add(credential.access_key_id)
    }
  })

/** Every store id an S3 credential names must be configured. */
function checkS3Buckets(config: { stores: Record<string, unknown>; s3_api?: z.output<typeof s3Api> }, ctx: z.RefinementCtx): void {
  for (const [i, credential] of (config.s3_api?.credentials ?? []).entries()) {
    for (const bucket of credential.buckets) {
      if (bucket !== '*' && !Object.hasOwn(config.stores, bucket)) {
        ctx.addIssue({ code: 'custom', message: `unknown store id "${bucket}"`, path: ['s3_api', 'credentials', i, 'buckets'] })
      }
    }
  }
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const

export const configSchema = z
  .object({
    listen,
    trust_proxy: trustProxy,
    auth,
    cache: z.preprocess((v) => v ?? {}, cache),
    sentry: z.preprocess((v) => v ?? {}, sentry),
    log: z.preprocess((v) => v ?? {}, z.object({ level: z.preprocess(unset, z.enum(LOG_LEVELS).default('info')) }).strict()),
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
    cors,
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
    s3_api: z.preprocess(unset, s3Api.optional()),
  })
  .strict()
  // A token's bucket that names no store is a typo that would only ever answer 403.
  .superRefine((config, ctx) => {
    config.auth.tokens.forEach(({ buckets }, i) =>
      buckets.forEach((bucket, j) => {
        if (bucket !== '*' && !Object.hasOwn(config.stores, bucket)) ctx.addIssue({ code: 'custom', message: `no store "${bucket}"`, path: ['auth', 'tokens', i, 'buckets', j] })
      }),
    )
  })
  .superRefine(checkS3Buckets)

export type Config = z.output<typeof configSchema>
export type StoreConfig = Config['stores'][string]
export type CorsConfig = NonNullable<Config['cors']>
