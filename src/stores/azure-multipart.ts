import { createHash, randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { ContainerClient } from '@azure/storage-blob'
import { BadRequestError, InvalidPartError, NoSuchUploadError } from '../errors.ts'
import { RESERVED_PREFIX, checkAzureKey } from './azure-admin.ts'
import { isAzureNotFound, toUpstreamError } from './azure.ts'
import { quoteEtag } from './common.ts'
import { checkCompletion, checkPartNumber, sizedPart, unquote } from './multipart.ts'
import type { MultipartPart, ObjectMeta, StoreAdmin } from './types.ts'

/** Upload ids we mint: 120 random bits in hex (30 characters, so block ids come out 43 bytes). */
const UPLOAD_ID = /^[0-9a-f]{30}$/
/** Azure's largest block (service version 2019-12-12 and later): one part is one block. */
const MAX_BLOCK_BYTES = 4000 * 1024 * 1024

interface Upload {
  key: string
  contentType: string
}

/**
 * Block id of a part: `<uploadId>-<partNumber, 12 digits>`, base64. 43 bytes, as `put`'s block
 * ids are: Azure wants every block id of one blob the same length, and a PUT and an upload to
 * one key may both have blocks staged.
 */
function blockIdOf(uploadId: string, partNumber: number): string {
  return Buffer.from(`${uploadId}-${String(partNumber).padStart(12, '0')}`).toString('base64')
}

/** The part number of one of this upload's block ids, else undefined. */
function partOf(uploadId: string, blockId: string): number | undefined {
  const match = /^([0-9a-f]{30})-(\d{12})$/.exec(Buffer.from(blockId, 'base64').toString())
  return match && match[1] === uploadId ? Number(match[2]) : undefined
}

/**
 * A part's ETag, from what the block list tells of it (its upload, number and size): the block
 * list keeps no checksum, and ListParts must answer the ETag UploadPart did. So it names the
 * part, not its bytes: a part uploaded again with the same size keeps its ETag.
 */
function etagOf(uploadId: string, partNumber: number, size: number): string {
  return `"${createHash('md5').update(`${uploadId}:${partNumber}:${size}`).digest('hex')}"`
}

/**
 * S3 multipart uploads on block blobs. A part is one staged (uncommitted) block of the target
 * blob; completing commits the listed blocks in part order, which makes the blob. Azure keeps
 * no record of an upload, so one small blob per upload does, `.cachegate-multipart/<uploadId>`
 * (key, content type): created with the upload, read before each part, deleted by complete or
 * abort, so an unknown, completed or aborted upload is `NoSuchUploadError` as in S3.
 *
 * Abort cannot remove staged blocks (Azure has no call for it): they stay uncommitted until
 * Azure garbage-collects them, 7 days after they were staged, or until the blob is next
 * written (a commit or a Put Blob discards every uncommitted block of the blob, so a PUT or a
 * completion to the same key also ends another upload's staged parts). A part is at most
 * 4000 MiB (Azure's block limit; S3 allows 5 GiB).
 */
export function azureMultipart(context: { id: string; container: ContainerClient }): Pick<StoreAdmin, 'createMultipart' | 'uploadPart' | 'completeMultipart' | 'abortMultipart' | 'listParts'> {
  const { id, container } = context

  const recordOf = (uploadId: string) => container.getBlockBlobClient(`${RESERVED_PREFIX}${uploadId}`)

  /** The upload's record; NoSuchUpload when it is gone or belongs to another key. */
  async function open(key: string, uploadId: string, signal: AbortSignal | undefined): Promise<Upload> {
    checkAzureKey(key)
    if (!UPLOAD_ID.test(uploadId)) throw new NoSuchUploadError('no such multipart upload')
    let upload: Upload
    try {
      upload = JSON.parse((await recordOf(uploadId).downloadToBuffer(0, undefined, { abortSignal: signal })).toString()) as Upload
    } catch (error) {
      if (isAzureNotFound(error)) throw new NoSuchUploadError('no such multipart upload')
      throw error
    }
    if (upload.key !== key) throw new NoSuchUploadError('no such multipart upload for this key')
    return upload
  }

  /** This upload's staged parts, by part number. */
  async function staged(key: string, uploadId: string, signal: AbortSignal | undefined): Promise<Map<number, MultipartPart & { blockId: string }>> {
    const parts = new Map<number, MultipartPart & { blockId: string }>()
    let blocks: { name: string; size: number }[]
    try {
      blocks = (await container.getBlockBlobClient(key).getBlockList('uncommitted', { abortSignal: signal })).uncommittedBlocks ?? []
    } catch (error) {
      // A blob with neither committed nor staged blocks does not exist at all.
      if (isAzureNotFound(error)) return parts
      throw error
    }
    for (const block of blocks) {
      const partNumber = partOf(uploadId, block.name)
      if (partNumber !== undefined) parts.set(partNumber, { partNumber, etag: etagOf(uploadId, partNumber, block.size), size: block.size, blockId: block.name })
    }
    return parts
  }

  async function createMultipart(key: string, options: { contentType: string; signal?: AbortSignal }): Promise<string> {
    checkAzureKey(key)
    const uploadId = randomBytes(15).toString('hex')
    const record = Buffer.from(JSON.stringify({ key, contentType: options.contentType } satisfies Upload))
    try {
      await recordOf(uploadId).upload(record, record.length, { blobHTTPHeaders: { blobContentType: 'application/json' }, abortSignal: options.signal })
      return uploadId
    } catch (error) {
      throw toUpstreamError(id, 'create multipart', error)
    }
  }

  async function uploadPart(key: string, uploadId: string, partNumber: number, body: Readable, options: { size?: number; signal?: AbortSignal }): Promise<MultipartPart> {
    checkAzureKey(key)
    checkPartNumber(partNumber)
    const { size } = options
    // Put Block sends a Content-Length: the size must be known (S3's UploadPart needs it too).
    if (size === undefined) throw new BadRequestError('an upload part needs its size (Content-Length)')
    if (size > MAX_BLOCK_BYTES) throw new BadRequestError(`an upload part is at most ${MAX_BLOCK_BYTES} bytes on this store`)
    const part = sizedPart(body, size, options.signal)
    try {
      await open(key, uploadId, part.signal)
      await container.getBlockBlobClient(key).stageBlock(blockIdOf(uploadId, partNumber), part.body, size, { abortSignal: part.signal })
      const failure = part.failure()
      if (failure) throw failure
      return { partNumber, etag: etagOf(uploadId, partNumber, size), size, lastModified: new Date() }
    } catch (error) {
      body.destroy()
      part.body.destroy()
      throw part.failure() ?? toUpstreamError(id, 'upload part', error)
    }
  }

  async function listParts(key: string, uploadId: string, options: { signal?: AbortSignal } = {}): Promise<MultipartPart[]> {
    try {
      await open(key, uploadId, options.signal)
      return [...(await staged(key, uploadId, options.signal)).values()]
        .sort((a, b) => a.partNumber - b.partNumber)
        .map(({ partNumber, etag, size }) => ({ partNumber, etag, size }))
    } catch (error) {
      throw toUpstreamError(id, 'list parts', error)
    }
  }

  async function completeMultipart(key: string, uploadId: string, parts: readonly MultipartPart[], options: { signal?: AbortSignal } = {}): Promise<ObjectMeta> {
    checkAzureKey(key)
    checkCompletion(parts)
    const { signal } = options
    try {
      const upload = await open(key, uploadId, signal)
      const have = await staged(key, uploadId, signal)
      let size = 0
      // Every part checked before the commit: a bad list leaves no blob.
      const blockIds = parts.map((part) => {
        const block = have.get(part.partNumber)
        if (block === undefined) throw new InvalidPartError(`part ${part.partNumber} was not uploaded`)
        if (unquote(block.etag) !== unquote(part.etag)) throw new InvalidPartError(`part ${part.partNumber} has another ETag`)
        size += block.size ?? 0
        return block.blockId
      })
      const res = await container.getBlockBlobClient(key).commitBlockList(blockIds, { blobHTTPHeaders: { blobContentType: upload.contentType }, abortSignal: signal })
      // The object is there: a record left behind (a failed delete) costs a few bytes, nothing more.
      await recordOf(uploadId).deleteIfExists({ abortSignal: signal }).catch(() => {})
      return { size, contentType: upload.contentType, etag: quoteEtag(res.etag), lastModified: res.lastModified }
    } catch (error) {
      throw toUpstreamError(id, 'complete multipart', error)
    }
  }

  async function abortMultipart(key: string, uploadId: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      await open(key, uploadId, options.signal)
      // The staged blocks cannot be removed: Azure discards them (see above).
      await recordOf(uploadId).delete({ abortSignal: options.signal })
    } catch (error) {
      // Deleted by a concurrent complete or abort since we read it.
      if (isAzureNotFound(error)) throw new NoSuchUploadError('no such multipart upload')
      throw toUpstreamError(id, 'abort multipart', error)
    }
  }

  return { createMultipart, uploadPart, completeMultipart, abortMultipart, listParts }
}
