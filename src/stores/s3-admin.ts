import type { Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { S3Client } from '@aws-sdk/client-s3'
import { BadRequestError, InvalidPartError, NoSuchUploadError } from '../errors.ts'
import { quoteEtag } from './common.ts'
import { validateKey } from './key.ts'
import { checkMaxKeys, compareKeys } from './list.ts'
import { checkCompletion, checkPartNumber, sizedPart } from './multipart.ts'
import { isS3NotFound, toUpstreamError } from './s3.ts'
import type { ListOptions, ListResult, MultipartPart, ObjectMeta, StoreAdmin } from './types.ts'

/** S3 answers at most 1000 parts a ListParts page. */
const MAX_PARTS_PER_PAGE = 1000

export interface S3AdminContext {
  id: string
  bucket: string
  client: S3Client
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectMeta | null>
}

/** The S3 error code of a failed call (`name` from the SDK, `Code` from the XML body). */
function codeOf(error: unknown): string | undefined {
  const e = error as { name?: string; Code?: string } | undefined
  return e?.Code ?? e?.name
}

/**
 * The S3 calls of StoreAdmin, one SDK command each. Continuation tokens are S3's own
 * `NextContinuationToken`, passed through as they are. `NoSuchUpload` becomes
 * `NoSuchUploadError`; `InvalidPart`, `InvalidPartOrder` and `EntityTooSmall` (a part other
 * than the last under 5 MiB) become `InvalidPartError`; anything else an `UpstreamError`.
 * A copy of an object over 5 GiB fails at S3 (CopyObject's limit; UploadPartCopy would do it).
 */
export function s3Admin(context: S3AdminContext): StoreAdmin {
  const { id, bucket, client } = context

  /** The domain error an S3 multipart failure stands for. */
  function multipartError(op: string, error: unknown): Error {
    const code = codeOf(error)
    if (code === 'NoSuchUpload') return new NoSuchUploadError('no such multipart upload', { cause: error })
    if (code === 'InvalidPart' || code === 'InvalidPartOrder' || code === 'EntityTooSmall') {
      return new InvalidPartError(`the store refused the parts (${code})`, { cause: error })
    }
    return toUpstreamError(id, op, error)
  }

  async function list(options: ListOptions): Promise<ListResult> {
    checkMaxKeys(options.maxKeys)
    try {
      const out = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: options.prefix || undefined,
          Delimiter: options.delimiter || undefined,
          StartAfter: options.startAfter,
          ContinuationToken: options.continuationToken,
          MaxKeys: options.maxKeys,
        }),
        { abortSignal: options.signal },
      )
      // Nothing at or before `startAfter`: some S3-compatible stores (s3rver) answer the common
      // prefix a ListObjects v1 NextMarker named again, and a client paging by it would loop.
      const { startAfter } = options
      const after = (name: string) => startAfter === undefined || options.continuationToken !== undefined || compareKeys(name, startAfter) > 0
      return {
        objects: (out.Contents ?? []).map((object) => ({ key: object.Key ?? '', size: object.Size ?? 0, etag: quoteEtag(object.ETag), lastModified: object.LastModified })).filter((entry) => after(entry.key)),
        commonPrefixes: (out.CommonPrefixes ?? []).map((common) => common.Prefix ?? '').filter(after),
        isTruncated: out.IsTruncated === true,
        ...(out.IsTruncated && out.NextContinuationToken !== undefined && { nextContinuationToken: out.NextContinuationToken }),
      }
    } catch (error) {
      // A token S3 cannot read (InvalidArgument) is the client's mistake, not the store's.
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
      if (options.continuationToken !== undefined && status === 400) throw new BadRequestError('invalid continuation token', { cause: error })
      throw toUpstreamError(id, 'list', error)
    }
  }

  async function remove(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    validateKey(key)
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: options.signal })
    } catch (error) {
      throw toUpstreamError(id, 'delete', error)
    }
  }

  async function copy(source: string, destination: string, options: { contentType?: string; signal?: AbortSignal } = {}): Promise<ObjectMeta | null> {
    validateKey(source)
    validateKey(destination)
    const { contentType, signal } = options
    try {
      await client.send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: destination,
          // x-amz-copy-source: bucket/key, URL-encoded (the slashes between segments kept).
          CopySource: `${bucket}/${source.split('/').map(encodeURIComponent).join('/')}`,
          // REPLACE takes the new content type (and drops any user metadata: we keep none).
          MetadataDirective: contentType === undefined ? 'COPY' : 'REPLACE',
          ContentType: contentType,
        }),
        { abortSignal: signal },
      )
    } catch (error) {
      if (isS3NotFound(error)) return null
      throw toUpstreamError(id, 'copy', error)
    }
    return await context.head(destination, { signal })
  }

  async function createMultipart(key: string, options: { contentType: string; signal?: AbortSignal }): Promise<string> {
    validateKey(key)
    try {
      const out = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: options.contentType }), { abortSignal: options.signal })
      if (!out.UploadId) throw new Error('CreateMultipartUpload answered no UploadId')
      return out.UploadId
    } catch (error) {
      throw toUpstreamError(id, 'create multipart', error)
    }
  }

  async function uploadPart(key: string, uploadId: string, partNumber: number, body: Readable, options: { size?: number; signal?: AbortSignal }): Promise<MultipartPart> {
    validateKey(key)
    checkPartNumber(partNumber)
    // UploadPart streams only with a Content-Length (S3 refuses a chunked body without one).
    if (options.size === undefined) throw new BadRequestError('an upload part needs its size (Content-Length)')
    const part = sizedPart(body, options.size, options.signal)
    try {
      const out = await client.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: part.body, ContentLength: options.size }),
        { abortSignal: part.signal },
      )
      const etag = quoteEtag(out.ETag)
      if (etag === undefined) throw new Error('UploadPart answered no ETag')
      return { partNumber, etag, size: options.size }
    } catch (error) {
      throw part.failure() ?? multipartError('upload part', error)
    } finally {
      // The SDK may stop reading a body it no longer sends: release the client's stream.
      part.body.destroy()
    }
  }

  async function completeMultipart(key: string, uploadId: string, parts: readonly MultipartPart[], options: { signal?: AbortSignal } = {}): Promise<ObjectMeta> {
    validateKey(key)
    checkCompletion(parts)
    let etag: string | undefined
    try {
      const out = await client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: part.etag })) },
        }),
        { abortSignal: options.signal },
      )
      etag = quoteEtag(out.ETag)
    } catch (error) {
      throw multipartError('complete multipart', error)
    }
    // CompleteMultipartUpload answers neither size nor content type: ask for them.
    const stored = await context.head(key, options)
    if (stored === null) throw toUpstreamError(id, 'complete multipart', new Error('the completed object is not there'))
    return etag === undefined || stored.etag === etag ? stored : { ...stored, etag }
  }

  async function abortMultipart(key: string, uploadId: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    validateKey(key)
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal: options.signal })
    } catch (error) {
      throw multipartError('abort multipart', error)
    }
  }

  async function listParts(key: string, uploadId: string, options: { signal?: AbortSignal } = {}): Promise<MultipartPart[]> {
    validateKey(key)
    const parts: MultipartPart[] = []
    try {
      let marker: string | undefined
      // At most 10,000 parts: ten pages.
      for (;;) {
        const out = await client.send(
          new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker, MaxParts: MAX_PARTS_PER_PAGE }),
          { abortSignal: options.signal },
        )
        for (const part of out.Parts ?? []) {
          const etag = quoteEtag(part.ETag)
          if (part.PartNumber === undefined || etag === undefined) continue
          parts.push({ partNumber: part.PartNumber, etag, size: part.Size, lastModified: part.LastModified })
        }
        if (!out.IsTruncated || out.NextPartNumberMarker === undefined || out.NextPartNumberMarker === marker) break
        marker = out.NextPartNumberMarker
      }
    } catch (error) {
      throw multipartError('list parts', error)
    }
    return parts
  }

  return { list, delete: remove, copy, createMultipart, uploadPart, completeMultipart, abortMultipart, listParts }
}
