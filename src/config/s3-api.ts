/** `s3_api:` (issue 15): the credentials of the S3-compatible front end. */
import { z } from 'zod'
import { unset } from './fields.ts'

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
export const s3Api = z
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
export function checkS3Buckets(config: { stores: Record<string, unknown>; s3_api?: z.output<typeof s3Api> }, ctx: z.RefinementCtx): void {
  for (const [i, credential] of (config.s3_api?.credentials ?? []).entries()) {
    for (const bucket of credential.buckets) {
      if (bucket !== '*' && !Object.hasOwn(config.stores, bucket)) {
        ctx.addIssue({ code: 'custom', message: `unknown store id "${bucket}"`, path: ['s3_api', 'credentials', i, 'buckets'] })
      }
    }
  }
}

