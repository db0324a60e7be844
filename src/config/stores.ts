/** `stores.<id>`: the three store types, their fallbacks and per-store freshness and CORS. */
import { z } from 'zod'
import { cors } from './cors.ts'
import { bool, duration, optionalString, unset } from './fields.ts'

/** The freshness keys, globally under `cache` and per store under `stores.<id>.cache`. */
export const freshnessKeys = {
  /** A hit older than this is revalidated in the background; unset: never. */
  revalidate_after: duration.optional(),
  /** Past revalidate_after + max_stale a hit waits for its revalidation; unset: never. */
  max_stale: duration.optional(),
  /** A 404 from the store is remembered this long; 0: off. */
  negative_ttl: duration.optional(),
}
export const storeCache = z.preprocess(unset, z.object(freshnessKeys).strict().optional())

/** Other stores holding the same keys, read when this one fails or lacks a key (see `with-fallback.ts`). */
export const fallback = z.preprocess(unset, z.array(z.string().min(1)).optional())

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

export const store = z.discriminatedUnion('type', [fsStore, s3Store, azureStore])

/** Store ids appear in URLs as the first path segment. */
export const STORE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/

/** Every `fallback` entry names another configured store, and no chain of them comes back: each problem once. */
export function checkFallbacks(stores: Record<string, { fallback?: string[] | undefined }>, ctx: z.RefinementCtx): void {
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

