/**
 * AWS Signature V4 headers for one GET (UNSIGNED-PAYLOAD), so the "direct to s3rver"
 * baseline makes the same signed request the gateway's SDK makes, without the SDK's own
 * client-side overhead. AWS docs: "Signature Version 4 signing process" / "Create a canonical request".
 */
import { createHash, createHmac } from 'node:crypto'

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest()
const sha256 = (data: string) => createHash('sha256').update(data).digest('hex')

/** RFC 3986 unreserved characters stay; everything else is percent-encoded (AWS rules). */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

export function signedGetHeaders(url: string, credentials: { accessKey: string; secretKey: string; region?: string }, now = new Date()): Record<string, string> {
  const target = new URL(url)
  const region = credentials.region ?? 'us-east-1'
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  const day = amzDate.slice(0, 8)
  const path = decodeURIComponent(target.pathname).split('/').map(encodeSegment).join('/')
  const headers = { host: target.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-date': amzDate }
  const signedHeaders = Object.keys(headers).join(';')
  const canonical = ['GET', path, '', ...Object.entries(headers).map(([k, v]) => `${k}:${v}`), '', signedHeaders, 'UNSIGNED-PAYLOAD'].join('\n')
  const scope = `${day}/${region}/s3/aws4_request`
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n')
  const key = hmac(hmac(hmac(hmac(`AWS4${credentials.secretKey}`, day), region), 's3'), 'aws4_request')
  const signature = createHmac('sha256', key).update(stringToSign).digest('hex')
  return {
    'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
    'x-amz-date': amzDate,
    authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKey}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  }
}
