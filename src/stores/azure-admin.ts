import type { ContainerClient } from '@azure/storage-blob'
import { BadRequestError, InvalidKeyError } from '../errors.ts'
import { errorInfo, isAzureNotFound, toUpstreamError } from './azure.ts'
import { quoteEtag } from './common.ts'
import { validateKey } from './key.ts'
import { checkMaxKeys, compareKeys } from './list.ts'
import type { ListEntry, ListOptions, ListResult, ObjectMeta, StoreAdmin } from './types.ts'

/**
 * Multipart state (one small blob per upload) lives under this prefix of the container; no key
 * can name it (`checkAzureKey`) and listings skip it. See `azure-multipart.ts`.
 */
export const RESERVED_PREFIX = '.cachegate-multipart/'

/** How often a copy that the service runs in the background is polled (same-account copies finish at once). */
const COPY_POLL_MS = 500

export interface AzureAdminContext {
  id: string
  container: ContainerClient
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectMeta | null>
}

/** A blob under the reserved prefix (a blob named `.cachegate` or `.c` is a key like any other). */
function reservedBlob(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX)
}

/** A common prefix under the reserved prefix, or one that holds it (it may group only multipart records). */
function reservedPrefix(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX) || RESERVED_PREFIX.startsWith(name)
}

/**
 * list, delete and copy of the Azure store.
 *
 * Listing pages with Azure's own marker: the continuation token is the service's `NextMarker`,
 * passed through as it is, and a page asks Azure for `maxKeys` entries (blobs and prefixes,
 * `listBlobsByHierarchy` with a delimiter, `listBlobsFlat` without). `startAfter` is applied
 * here (Azure has no such parameter in the versions Azurite speaks), so a page may hold fewer
 * than `maxKeys` entries and still be truncated, as S3 allows; a start far into the container
 * costs a walk of the pages before it.
 *
 * Copy is Copy Blob within the container (`beginCopyFromURL`: the destination's credentials
 * authorize a source in the same account); a new content type is set after the copy, so a
 * reader may briefly see the old one.
 */
export function azureAdmin(context: AzureAdminContext): Pick<StoreAdmin, 'list' | 'delete' | 'copy'> {
  const { id, container } = context

  async function list(options: ListOptions): Promise<ListResult> {
    checkMaxKeys(options.maxKeys)
    const { prefix, delimiter, startAfter, maxKeys, signal } = options
    const after = (name: string) => startAfter === undefined || compareKeys(name, startAfter) > 0
    let token = options.continuationToken
    try {
      for (;;) {
        const pages = delimiter
          ? container.listBlobsByHierarchy(delimiter, { prefix, abortSignal: signal }).byPage({ continuationToken: token, maxPageSize: maxKeys })
          : container.listBlobsFlat({ prefix, abortSignal: signal }).byPage({ continuationToken: token, maxPageSize: maxKeys })
        const { value: page, done } = await pages.next()
        if (done || page === undefined) return { objects: [], commonPrefixes: [], isTruncated: false }
        const segment = page.segment as { blobItems: { name: string; properties: { contentLength?: number; etag?: string; lastModified?: Date } }[]; blobPrefixes?: { name: string }[] }
        const objects: ListEntry[] = segment.blobItems
          .filter((blob) => !reservedBlob(blob.name) && after(blob.name))
          .map((blob) => ({ key: blob.name, size: blob.properties.contentLength ?? 0, etag: quoteEtag(blob.properties.etag), lastModified: blob.properties.lastModified }))
        const commonPrefixes = (segment.blobPrefixes ?? []).map((common) => common.name).filter((name) => !reservedPrefix(name) && after(name))
        const next = page.continuationToken || undefined
        // A page whose every entry was skipped says nothing: read on (S3 would not answer it).
        if (objects.length + commonPrefixes.length === 0 && next !== undefined) {
          token = next
          continue
        }
        return { objects, commonPrefixes, isTruncated: next !== undefined, ...(next !== undefined && { nextContinuationToken: next }) }
      }
    } catch (error) {
      // A marker Azure cannot read is the client's mistake, not the store's.
      if (options.continuationToken !== undefined && errorInfo(error).status === 400) throw new BadRequestError('invalid continuation token', { cause: error })
      throw toUpstreamError(id, 'list', error)
    }
  }

  async function remove(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    checkAzureKey(key)
    try {
      await container.getBlobClient(key).deleteIfExists({ abortSignal: options.signal })
    } catch (error) {
      throw toUpstreamError(id, 'delete', error)
    }
  }

  async function copy(source: string, destination: string, options: { contentType?: string; signal?: AbortSignal } = {}): Promise<ObjectMeta | null> {
    checkAzureKey(source)
    checkAzureKey(destination)
    const { contentType, signal } = options
    const target = container.getBlobClient(destination)
    try {
      const poller = await target.beginCopyFromURL(container.getBlobClient(source).url, { abortSignal: signal, intervalInMs: COPY_POLL_MS })
      const done = await poller.pollUntilDone()
      if (done.copyStatus !== undefined && done.copyStatus !== 'success') throw new Error(`copy ended ${done.copyStatus}`)
      if (contentType !== undefined) await target.setHTTPHeaders({ blobContentType: contentType }, { abortSignal: signal })
    } catch (error) {
      // The source is missing: 404 BlobNotFound (or CannotVerifyCopySource, as the service words it).
      if (isAzureNotFound(error) || errorInfo(error).code === 'CannotVerifyCopySource') return null
      throw toUpstreamError(id, 'copy', error)
    }
    return await context.head(destination, { signal })
  }

  return { list, delete: remove, copy }
}

/** `validateKey`, then the reserved prefix (before any store call). */
export function checkAzureKey(key: string): void {
  validateKey(key)
  if (key.startsWith(RESERVED_PREFIX)) throw new InvalidKeyError(`keys under ${RESERVED_PREFIX} are reserved by the azure store`)
}
