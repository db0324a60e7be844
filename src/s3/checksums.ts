/**
 * The flexible checksums S3 clients send with a body (`x-amz-checksum-<alg>` as a header or an
 * aws-chunked trailer): CRC32 (what current AWS SDKs send by default), CRC32C, SHA-1, SHA-256.
 * Values are base64 of the big-endian digest (AWS "Checking object integrity").
 */
import { createHash, type Hash } from 'node:crypto'
import { crc32 } from 'node:zlib'

export type ChecksumAlgorithm = 'crc32' | 'crc32c' | 'sha1' | 'sha256'

export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = ['crc32', 'crc32c', 'sha1', 'sha256']

export interface Checksum {
  update(chunk: Buffer): void
  /** base64 of the digest, as S3 writes it. */
  digest(): string
}

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven: Node has CRC-32 only. */
const CRC32C_TABLE = (() => {
  const table = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
    table[n] = c
  }
  return table
})()

export function crc32c(chunk: Uint8Array, previous = 0): number {
  let crc = ~previous
  for (let i = 0; i < chunk.length; i++) crc = CRC32C_TABLE[(crc ^ chunk[i]!) & 0xff]! ^ (crc >>> 8)
  return ~crc >>> 0
}

function crcChecksum(step: (chunk: Buffer, previous: number) => number): Checksum {
  let value = 0
  return {
    update(chunk) {
      value = step(chunk, value)
    },
    digest() {
      const out = Buffer.alloc(4)
      out.writeUInt32BE(value >>> 0)
      return out.toString('base64')
    },
  }
}

function hashChecksum(hash: Hash): Checksum {
  return { update: (chunk) => hash.update(chunk), digest: () => hash.digest('base64') }
}

export function isChecksumAlgorithm(name: string): name is ChecksumAlgorithm {
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(name)
}

export function createChecksum(algorithm: ChecksumAlgorithm): Checksum {
  switch (algorithm) {
    case 'crc32':
      return crcChecksum((chunk, previous) => crc32(chunk, previous))
    case 'crc32c':
      return crcChecksum(crc32c)
    case 'sha1':
      return hashChecksum(createHash('sha1'))
    case 'sha256':
      return hashChecksum(createHash('sha256'))
  }
}
