/**
 * Multipart uploads, passed to the store (StoreAdmin): Create, UploadPart, Complete, Abort,
 * ListParts. Parts never touch the cache; completing one invalidates the key like a PUT.
 */
import { DEFAULT_CONTENT_TYPE, contentTypeFromKey, isValidContentType } from '../../content-type.ts'
import { type S3Context, type S3Request, clientGone, storeOp } from '../context.ts'
import { S3Error } from '../errors.ts'
import { openBody, readSmallBody } from '../payload.ts'
import { refuseUnsupportedWriteHeaders } from './object.ts'
import { single } from '../query.ts'
import { sendEmpty, sendXml } from '../respond.ts'
import { parseCompleteMultipart, xmlDocument } from '../xml.ts'

const MAX_PARTS = 10_000
/** S3's part size limit. */
const MAX_PART_SIZE = 5 * 2 ** 30
/** A CompleteMultipartUpload body for 10,000 parts is under 1.5 MiB. */
const MAX_COMPLETE_BODY = 2 * 2 ** 20

function uploadIdOf(request: S3Request): string {
  const id = single(request.params, 'uploadId')
  if (!id || id.length > 1024) throw new S3Error('InvalidArgument', 'uploadId must be 1 to 1024 characters')
  return id
}

function boundedInt(request: S3Request, name: string, min: number, max: number, fallback: number): number {
  const text = single(request.params, name)
  if (text === undefined) return fallback
  if (!/^\d{1,6}$/.test(text) || Number(text) < min || Number(text) > max) throw new S3Error('InvalidArgument', `${name} must be an integer from ${min} to ${max}`)
  return Number(text)
}

export async function createMultipartUpload(_ctx: S3Context, request: S3Request): Promise<void> {
  const { incoming, store, key, bucket } = request
  refuseUnsupportedWriteHeaders(request)
  const declared = incoming.headers['content-type']
  if (declared !== undefined && !isValidContentType(declared)) throw new S3Error('InvalidArgument', 'invalid Content-Type')
  const contentType = declared ?? contentTypeFromKey(key!) ?? DEFAULT_CONTENT_TYPE
  const uploadId = await storeOp(store, 'createMultipart')(key!, { contentType })
  sendXml(request.outgoing, 200, xmlDocument('InitiateMultipartUploadResult', [
    ['Bucket', bucket],
    ['Key', key],
    ['UploadId', uploadId],
  ]))
}

export async function uploadPart(ctx: S3Context, request: S3Request): Promise<void> {
  const { incoming, store, key } = request
  const uploadId = uploadIdOf(request)
  if (single(request.params, 'partNumber') === undefined) throw new S3Error('InvalidArgument', 'partNumber is required')
  const partNumber = boundedInt(request, 'partNumber', 1, MAX_PARTS, 0)
  const { body, size } = openBody(incoming, request.verified, Math.min(MAX_PART_SIZE, ctx.maxUploadSize), request.params)
  const unwatch = ctx.object.watchUpload?.(incoming)
  const gone = clientGone(incoming)
  try {
    const part = await storeOp(store, 'uploadPart')(key!, uploadId, partNumber, body, { size, signal: gone.signal })
    sendEmpty(request.outgoing, 200, { ETag: part.etag })
  } catch (error) {
    throw body.errored instanceof S3Error ? body.errored : error
  } finally {
    gone.done()
    unwatch?.()
  }
}

export async function completeMultipartUpload(ctx: S3Context, request: S3Request): Promise<void> {
  const { store, key, bucket } = request
  const uploadId = uploadIdOf(request)
  const xml = (await readSmallBody(request.incoming, request.verified, MAX_COMPLETE_BODY)).toString('utf8')
  const parts = parseCompleteMultipart(xml, MAX_PARTS)
  for (let i = 1; i < parts.length; i++) {
    if (parts[i]!.partNumber <= parts[i - 1]!.partNumber) throw new S3Error('InvalidPart', 'the list of parts was not in ascending order (InvalidPartOrder)')
  }
  let meta
  try {
    meta = await storeOp(store, 'completeMultipart')(key!, uploadId, parts)
  } finally {
    // Even when the store failed: it may have completed the upload all the same.
    await ctx.objects.invalidate(store, key!)
  }
  sendXml(request.outgoing, 200, xmlDocument('CompleteMultipartUploadResult', [
    ['Location', `/${encodeURIComponent(bucket)}/${key!.split('/').map(encodeURIComponent).join('/')}`],
    ['Bucket', bucket],
    ['Key', key],
    ['ETag', meta.etag],
  ]))
}

export async function abortMultipartUpload(_ctx: S3Context, request: S3Request): Promise<void> {
  await storeOp(request.store, 'abortMultipart')(request.key!, uploadIdOf(request))
  sendEmpty(request.outgoing, 204)
}

export async function listParts(_ctx: S3Context, request: S3Request): Promise<void> {
  const { store, key, bucket } = request
  const uploadId = uploadIdOf(request)
  const maxParts = boundedInt(request, 'max-parts', 0, 1000, 1000)
  const marker = boundedInt(request, 'part-number-marker', 0, MAX_PARTS, 0)
  const all = (await storeOp(store, 'listParts')(key!, uploadId)).filter((part) => part.partNumber > marker)
  const page = all.slice(0, maxParts)
  const truncated = all.length > page.length
  sendXml(request.outgoing, 200, xmlDocument('ListPartsResult', [
    ['Bucket', bucket],
    ['Key', key],
    ['UploadId', uploadId],
    ['PartNumberMarker', marker],
    ['NextPartNumberMarker', page.at(-1)?.partNumber ?? marker],
    ['MaxParts', maxParts],
    ['IsTruncated', truncated],
    ['StorageClass', 'STANDARD'],
    ...page.map((part): [string, [string, string | number | Date | undefined][]] => [
      'Part',
      [
        ['PartNumber', part.partNumber],
        ['LastModified', part.lastModified],
        ['ETag', part.etag],
        ['Size', part.size],
      ],
    ]),
  ]))
}
