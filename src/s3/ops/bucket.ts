/**
 * Bucket-level operations: ListObjectsV2 (and v1) passed through to the store, never cached;
 * HeadBucket, GetBucketLocation, DeleteObjects, and ListBuckets (the ids this key may use).
 */
import { validateKey } from '../../stores/key.ts'
import type { ListResult } from '../../stores/types.ts'
import { authorize, mayUseBucket, type S3Credential } from '../auth/scope.ts'
import { type S3Context, type S3Request, storeOp } from '../context.ts'
import { S3Error, toS3Error } from '../errors.ts'
import { readSmallBody } from '../payload.ts'
import { type QueryBag, single } from '../query.ts'
import { sendEmpty, sendXml } from '../respond.ts'
import { type XmlNode, parseDelete, xmlDocument } from '../xml.ts'

const MAX_KEYS = 1000
/** Keys are at most 1024 bytes; a prefix or marker longer than that can match nothing. */
const MAX_NAME = 1024
/** A Delete body with 1000 keys of 1024 bytes, escaped, is under 8 MiB; real ones are far smaller. */
const MAX_DELETE_BODY = 8 * 2 ** 20
/** Deletes of one DeleteObjects request in flight at once. */
const DELETE_CONCURRENCY = 8

function text(params: QueryBag, name: string, max = MAX_NAME): string | undefined {
  const value = single(params, name)
  if (value !== undefined && value.length > max) throw new S3Error('InvalidArgument', `${name} is longer than ${max} characters`)
  return value
}

interface ListParams {
  prefix: string
  delimiter?: string
  maxKeys: number
  encode: (value: string) => string
  url: boolean
}

function listParams(request: S3Request): ListParams {
  const { params } = request
  const prefix = text(params, 'prefix') ?? ''
  // A listing is a read of every key it names: it must stay within the key's prefix.
  const scope = request.verified.credential.prefix
  if (!prefix.startsWith(scope)) throw new S3Error('AccessDenied', 'this access key may only list keys under its prefix (send a prefix that starts with it)')
  const delimiter = text(params, 'delimiter') || undefined
  const maxText = single(params, 'max-keys')
  if (maxText !== undefined && !/^\d{1,9}$/.test(maxText)) throw new S3Error('InvalidArgument', 'max-keys must be a non-negative integer')
  const maxKeys = Math.min(MAX_KEYS, maxText === undefined ? MAX_KEYS : Number(maxText))
  const encoding = single(params, 'encoding-type')
  if (encoding !== undefined && encoding !== 'url') throw new S3Error('InvalidArgument', 'encoding-type must be url')
  // encoding-type=url: the AWS CLI asks for it and decodes every key; encodeURIComponent never
  // writes "+", so a decoder that reads "+" as a space gets the same key back.
  const url = encoding === 'url'
  return { prefix, delimiter, maxKeys, encode: url ? encodeURIComponent : (value) => value, url }
}

const EMPTY: ListResult = { objects: [], commonPrefixes: [], isTruncated: false }

function entries(result: ListResult, encode: (value: string) => string): XmlNode[] {
  return [
    ...result.objects.map((entry): XmlNode => [
      'Contents',
      [
        ['Key', encode(entry.key)],
        ['LastModified', entry.lastModified],
        ['ETag', entry.etag],
        ['Size', entry.size],
        ['StorageClass', 'STANDARD'],
      ],
    ]),
    ...result.commonPrefixes.map((prefix): XmlNode => ['CommonPrefixes', [['Prefix', encode(prefix)]]]),
  ]
}

export async function listObjectsV2(_ctx: S3Context, request: S3Request): Promise<void> {
  const list = listParams(request)
  const continuationToken = text(request.params, 'continuation-token', 4096)
  const startAfter = text(request.params, 'start-after')
  const result =
    list.maxKeys === 0
      ? EMPTY
      : await storeOp(request.store, 'list')({ prefix: list.prefix || undefined, delimiter: list.delimiter, startAfter, continuationToken, maxKeys: list.maxKeys })
  const { encode } = list
  sendXml(request.outgoing, 200, xmlDocument('ListBucketResult', [
    ['Name', request.bucket],
    ['Prefix', encode(list.prefix)],
    ['Delimiter', list.delimiter && encode(list.delimiter)],
    ['MaxKeys', list.maxKeys],
    ['EncodingType', list.url ? 'url' : undefined],
    ['KeyCount', result.objects.length + result.commonPrefixes.length],
    ['IsTruncated', result.isTruncated],
    ['ContinuationToken', continuationToken],
    ['NextContinuationToken', result.isTruncated ? result.nextContinuationToken : undefined],
    ['StartAfter', startAfter && encode(startAfter)],
    ...entries(result, encode),
  ]))
}

/**
 * ListObjects (v1), which rclone and older clients use: `marker` is a start-after. NextMarker is
 * always sent when truncated (S3 sends it only with a delimiter; clients prefer it when present).
 */
export async function listObjects(_ctx: S3Context, request: S3Request): Promise<void> {
  const list = listParams(request)
  const marker = text(request.params, 'marker')
  const result =
    list.maxKeys === 0
      ? EMPTY
      : await storeOp(request.store, 'list')({ prefix: list.prefix || undefined, delimiter: list.delimiter, startAfter: marker || undefined, maxKeys: list.maxKeys })
  const lastKey = result.objects.at(-1)?.key
  const lastPrefix = result.commonPrefixes.at(-1)
  const nextMarker = lastKey === undefined ? lastPrefix : lastPrefix === undefined || Buffer.compare(Buffer.from(lastKey), Buffer.from(lastPrefix)) > 0 ? lastKey : lastPrefix
  const { encode } = list
  sendXml(request.outgoing, 200, xmlDocument('ListBucketResult', [
    ['Name', request.bucket],
    ['Prefix', encode(list.prefix)],
    ['Marker', encode(marker ?? '')],
    ['NextMarker', result.isTruncated && nextMarker !== undefined ? encode(nextMarker) : undefined],
    ['MaxKeys', list.maxKeys],
    ['Delimiter', list.delimiter && encode(list.delimiter)],
    ['EncodingType', list.url ? 'url' : undefined],
    ['IsTruncated', result.isTruncated],
    ...entries(result, encode),
  ]))
}

export async function headBucket(ctx: S3Context, request: S3Request): Promise<void> {
  sendEmpty(request.outgoing, 200, { 'x-amz-bucket-region': ctx.region })
}

export async function getBucketLocation(ctx: S3Context, request: S3Request): Promise<void> {
  // us-east-1 is written as an empty constraint (S3's historical answer).
  const region = ctx.region === 'us-east-1' ? '' : ctx.region
  sendXml(request.outgoing, 200, `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${region}</LocationConstraint>`)
}

/** DeleteObjects: each key is a DELETE in the access key's scope; refusals and failures are per key, in the answer. */
export async function deleteObjects(ctx: S3Context, request: S3Request): Promise<void> {
  const { store, verified } = request
  const xml = (await readSmallBody(request.incoming, verified, MAX_DELETE_BODY)).toString('utf8')
  const { quiet, keys } = parseDelete(xml, MAX_KEYS)
  const remove = storeOp(store, 'delete')
  const results: XmlNode[] = new Array(keys.length)
  let next = 0
  async function worker(): Promise<void> {
    while (next < keys.length) {
      const index = next++
      const key = keys[index]!
      try {
        authorize(verified.credential, 'DELETE', request.bucket, key)
        // Checked before the store and the cache see it (a key from XML may hold &#0;).
        validateKey(key)
        try {
          await remove(key)
        } finally {
          // Even when the store failed: it may have deleted the object all the same.
          await ctx.objects.invalidate(store, key)
        }
        if (!quiet) results[index] = ['Deleted', [['Key', key]]]
      } catch (error) {
        const s3 = toS3Error(error)
        results[index] = ['Error', [['Key', key], ['Code', s3.code], ['Message', s3.message]]]
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, keys.length) }, worker))
  sendXml(request.outgoing, 200, xmlDocument('DeleteResult', results.filter(Boolean)))
}

/** ListBuckets: the configured ids this access key may use (no store call). */
export function listBuckets(ctx: S3Context, credential: S3Credential, outgoing: S3Request['outgoing']): void {
  const epoch = new Date(0)
  const buckets = [...ctx.stores.keys()].filter((id) => mayUseBucket(credential, id))
  sendXml(outgoing, 200, xmlDocument('ListAllMyBucketsResult', [
    ['Owner', [['ID', 'cachegate'], ['DisplayName', 'cachegate']]],
    ['Buckets', buckets.map((name): XmlNode => ['Bucket', [['Name', name], ['CreationDate', epoch]]])],
  ]))
}
