/**
 * Signing S3 requests by hand in tests, with the AWS SDK's own signer (`@smithy/signature-v4`):
 * for requests the SDK's commands would not send (raw bodies, tampered chunks, odd headers).
 */
import { createHash, createHmac } from 'node:crypto'
import { SignatureV4 } from '@smithy/signature-v4'
import { FULL, REGION } from './s3-gateway.ts'

/** The hash constructor smithy's signer takes, on node:crypto. */
export class NodeSha256 {
  readonly #hash
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', typeof secret === 'string' ? secret : Buffer.from(secret as ArrayBuffer))
  }
  update(data: Uint8Array | string) {
    this.#hash.update(data)
  }
  async digest() {
    return new Uint8Array(this.#hash.digest())
  }
  reset() {}
}

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest()

export interface Signed {
  headers: Record<string, string>
  /** The request's signature: the seed of the chunk signatures. */
  signature: string
  amzDate: string
  scope: string
  signingKey: Buffer
}

/** Signs `method url` with the SDK's signer; `payload` is the x-amz-content-sha256 value. */
export async function sign(base: string, method: string, target: string, headers: Record<string, string>, payload: string, credentials = FULL, date = new Date()): Promise<Signed> {
  const url = new URL(target, base)
  const signer = new SignatureV4({ service: 's3', region: REGION, credentials, sha256: NodeSha256, uriEscapePath: false })
  const query: Record<string, string> = {}
  for (const [k, v] of url.searchParams) query[k] = v
  const signed = await signer.sign(
    { method, protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: url.pathname, query, headers: { host: url.host, 'x-amz-content-sha256': payload, ...headers } },
    { signingDate: date },
  )
  const out = signed.headers as Record<string, string>
  const signature = /Signature=([0-9a-f]{64})/.exec(out.authorization!)![1]!
  const amzDate = out['x-amz-date']!
  const day = amzDate.slice(0, 8)
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), REGION), 's3'), 'aws4_request')
  return { headers: out, signature, amzDate, scope: `${day}/${REGION}/s3/aws4_request`, signingKey }
}

export const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex')
