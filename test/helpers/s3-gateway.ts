/**
 * A gateway with the S3 API on (`s3_api`), and AWS SDK clients pointed at it (path style,
 * the gateway URL as endpoint), for the test/s3-*.test.ts files.
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3'
import type { ObjectHooks } from '../../src/http/object/index.ts'
import type { Store } from '../../src/stores/types.ts'
import { type TestGateway, startGateway } from './gateway.ts'

export const REGION = 'us-east-1'
/** May do everything on every bucket. */
export const FULL = { accessKeyId: 'cg-test-full', secretAccessKey: 'full-secret-0123456789abcdef' }
/** Reads only, bucket `local` only, keys under `public/` only. */
export const READER = { accessKeyId: 'cg-test-reader', secretAccessKey: 'reader-secret-0123456789abcdef' }

/** `s3_api` with FULL, and READER on `readerBucket`. */
export function s3Api(readerBucket = 'local') {
  return {
    region: REGION,
    credentials: [
      { access_key_id: FULL.accessKeyId, secret_access_key: FULL.secretAccessKey, buckets: ['*'] },
      { access_key_id: READER.accessKeyId, secret_access_key: READER.secretAccessKey, buckets: [readerBucket], methods: ['GET', 'HEAD'], prefix: 'public/' },
    ],
  }
}

/** `stores` replaces the fs store `local`: name their ids in `raw.stores` too (any config), and the reader's bucket in `readerBucket`. */
export async function startS3Gateway(
  options: { stores?: Map<string, Store>; raw?: Record<string, unknown>; readerBucket?: string; objectHooks?: ObjectHooks } = {},
): Promise<TestGateway> {
  return startGateway({ stores: options.stores, raw: { s3_api: s3Api(options.readerBucket), ...options.raw }, objectHooks: options.objectHooks })
}

export function s3Client(url: string, credentials: { accessKeyId: string; secretAccessKey: string } = FULL, config: S3ClientConfig = {}): S3Client {
  return new S3Client({ endpoint: url, forcePathStyle: true, region: REGION, credentials, maxAttempts: 1, ...config })
}
