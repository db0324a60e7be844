/**
 * Which S3 operation a request is: method, path shape (`/`, `/bucket`, `/bucket/key`) and
 * subresource. Any query parameter the operation does not know (`?acl`, `?tagging`,
 * `?versionId`, …) makes it NotImplemented, never a success that ignored what was asked.
 */
import { InvalidKeyError } from '../errors.ts'
import { hasDotSegment, parseObjectPath } from '../http/object/index.ts'
import type { S3Method } from './auth/scope.ts'
import { S3Error, notImplemented } from './errors.ts'
import { type QueryBag, has } from './query.ts'

export type Operation =
  | 'ListBuckets'
  | 'HeadBucket'
  | 'GetBucketLocation'
  | 'ListObjectsV2'
  | 'ListObjects'
  | 'DeleteObjects'
  | 'GetObject'
  | 'HeadObject'
  | 'PutObject'
  | 'CopyObject'
  | 'DeleteObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'

/** `/` (no bucket), `/bucket[/]` (no key) or `/bucket/key`. */
export interface S3Target {
  bucket?: string
  key?: string
}

export function parseS3Path(path: string): S3Target {
  if (path === '/') return {}
  const slash = path.indexOf('/', 1)
  if (slash === -1 || slash === path.length - 1) {
    if (hasDotSegment(path)) throw new S3Error('InvalidArgument', 'dot segment in path')
    try {
      return { bucket: decodeURIComponent(path.slice(1, slash === -1 ? undefined : slash)) }
    } catch (error) {
      throw new S3Error('InvalidArgument', 'malformed percent-encoding in path', { cause: error })
    }
  }
  try {
    return parseObjectPath(path)
  } catch (error) {
    if (error instanceof InvalidKeyError) throw new S3Error('InvalidArgument', `invalid object key: ${error.message}`, { cause: error })
    throw error
  }
}

const RESPONSE_OVERRIDES = ['response-content-type', 'response-content-language', 'response-expires', 'response-cache-control', 'response-content-disposition', 'response-content-encoding']

/** A presigned upload may carry its checksum in the query, as a hoisted header (the SDK's presigner does). */
const QUERY_CHECKSUMS = ['x-amz-checksum-crc32', 'x-amz-checksum-crc32c', 'x-amz-checksum-sha1', 'x-amz-checksum-sha256', 'x-amz-sdk-checksum-algorithm']

/** The query parameters each operation reads (besides the signature's and the SDKs' `x-id`). */
const PARAMS: Record<Operation, readonly string[]> = {
  ListBuckets: ['max-buckets', 'prefix', 'bucket-region', 'continuation-token'],
  HeadBucket: [],
  GetBucketLocation: ['location'],
  ListObjectsV2: ['list-type', 'prefix', 'delimiter', 'continuation-token', 'max-keys', 'start-after', 'encoding-type', 'fetch-owner'],
  ListObjects: ['prefix', 'delimiter', 'marker', 'max-keys', 'encoding-type'],
  DeleteObjects: ['delete'],
  // x-amz-checksum-mode asks for stored checksums in the answer, where there are any: none here.
  GetObject: [...RESPONSE_OVERRIDES, 'x-amz-checksum-mode'],
  HeadObject: [...RESPONSE_OVERRIDES, 'x-amz-checksum-mode'],
  PutObject: QUERY_CHECKSUMS,
  CopyObject: [],
  DeleteObject: [],
  CreateMultipartUpload: ['uploads'],
  UploadPart: ['partNumber', 'uploadId', ...QUERY_CHECKSUMS],
  CompleteMultipartUpload: ['uploadId'],
  AbortMultipartUpload: ['uploadId'],
  ListParts: ['uploadId', 'max-parts', 'part-number-marker', 'encoding-type'],
}

const isAuthParam = (name: string) => name.startsWith('X-Amz-') || name === 'x-id'

export const S3_METHODS: readonly S3Method[] = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE']
export const isS3Method = (method: string): method is S3Method => (S3_METHODS as readonly string[]).includes(method)

function pick(method: S3Method, target: S3Target, params: QueryBag, copySource: boolean): Operation {
  if (target.bucket === undefined) {
    if (method === 'GET') return 'ListBuckets'
    throw notImplemented(`${method} /`)
  }
  if (target.key === undefined) {
    switch (method) {
      case 'HEAD':
        return 'HeadBucket'
      case 'GET':
        if (has(params, 'location')) return 'GetBucketLocation'
        if (has(params, 'list-type')) {
          if (params['list-type'] !== '2') throw new S3Error('InvalidArgument', 'list-type must be 2')
          return 'ListObjectsV2'
        }
        return 'ListObjects'
      case 'POST':
        if (has(params, 'delete')) return 'DeleteObjects'
        throw notImplemented('this POST on a bucket')
      default:
        throw notImplemented(`${method} on a bucket (creating, deleting or configuring buckets)`)
    }
  }
  switch (method) {
    case 'GET':
      return has(params, 'uploadId') ? 'ListParts' : 'GetObject'
    case 'HEAD':
      return 'HeadObject'
    case 'PUT':
      if (has(params, 'partNumber') || has(params, 'uploadId')) {
        if (copySource) throw notImplemented('UploadPartCopy')
        return 'UploadPart'
      }
      return copySource ? 'CopyObject' : 'PutObject'
    case 'POST':
      if (has(params, 'uploads')) return 'CreateMultipartUpload'
      if (has(params, 'uploadId')) return 'CompleteMultipartUpload'
      throw notImplemented('this POST on an object')
    case 'DELETE':
      return has(params, 'uploadId') ? 'AbortMultipartUpload' : 'DeleteObject'
  }
}

/** The operation, or NotImplemented for one this gateway does not do (named in the message). */
export function operationOf(method: S3Method, target: S3Target, params: QueryBag, copySource: boolean): Operation {
  const operation = pick(method, target, params, copySource)
  const known = PARAMS[operation]
  for (const name of Object.keys(params)) {
    if (!isAuthParam(name) && !known.includes(name)) throw notImplemented(`the "${name}" query parameter on ${operation}`)
  }
  return operation
}
