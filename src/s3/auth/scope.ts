/**
 * What an S3 access key may do: `s3_api.credentials` entries name their buckets, HTTP methods
 * and key prefix. A verified signature outside its scope is AccessDenied (403), never a 404
 * that would tell a stranger which buckets exist.
 */
import { S3Error } from '../errors.ts'

export type S3Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE'

export interface S3Credential {
  accessKeyId: string
  secretAccessKey: string
  /** Store ids, or `*` for every one. */
  buckets: readonly string[]
  methods: ReadonlySet<S3Method>
  /** Keys (and listing prefixes) must start with this; '' for any. */
  prefix: string
}

export function mayUseBucket(credential: S3Credential, bucket: string): boolean {
  return credential.buckets.includes('*') || credential.buckets.includes(bucket)
}

/** Throws AccessDenied unless `credential` may use `method` on `bucket`, and on `key` when one is named. */
export function authorize(credential: S3Credential, method: S3Method, bucket: string, key?: string): void {
  if (!mayUseBucket(credential, bucket)) throw new S3Error('AccessDenied', `this access key may not use bucket "${bucket}"`)
  if (!credential.methods.has(method)) throw new S3Error('AccessDenied', `this access key may not use ${method}`)
  if (key !== undefined && !key.startsWith(credential.prefix)) throw new S3Error('AccessDenied', 'this access key may not use this key (outside its prefix)')
}
