import { z } from 'zod'
import { decodeBase64Url, isUsablePublicKey, publicKeyOf } from '../auth/keys.ts'
import { parseTrustedProxies } from '../http/client-address.ts'
import { keyEntry, tokenEntry, uniqueIds, wholeSeconds } from './auth-entries.ts'
import { cors } from './cors.ts'
import { address, bool, duration, hostPort, listen, number, optionalString, size, unset } from './fields.ts'
import { checkS3Buckets, s3Api } from './s3-api.ts'
import { STORE_ID, checkFallbacks, freshnessKeys, store } from './stores.ts'

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
