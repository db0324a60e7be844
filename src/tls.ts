/**
 * `tls`: HTTPS from PEM files, reloaded on SIGHUP without dropping a connection
 * (`server.setSecureContext` only affects handshakes that start later), or a self-signed
 * certificate generated at start-up for development (`tls.self_signed`).
 */
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import type { Config } from './config/schema.ts'

/** What `https.createServer` and `setSecureContext` take. */
export interface TlsPair {
  cert: Buffer | string
  key: Buffer | string
}

/** A certificate or key that cannot be used; the message names the file and the problem, never key material. */
export class TlsError extends Error {
  override name = 'TlsError'
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file)
  } catch (error) {
    throw new TlsError(`cannot read ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error })
  }
}

/** OpenSSL's reason, without the `error:0A00...:` prefix (it names no key material). */
function reason(error: unknown): string {
  const message = (error as Error).message ?? String(error)
  return message.replace(/^error:[0-9A-Fa-f]+:/, '').replace(/^[^:]*routines::/, '')
}

/**
 * Reads `tls.cert` and `tls.key` and checks that they parse and belong together: the same
 * check at start-up (a `TlsError` stops it) and on SIGHUP (the old pair stays).
 */
export function loadTlsPair(certFile: string, keyFile: string): TlsPair {
  const cert = readPem(certFile, 'tls.cert')
  const key = readPem(keyFile, 'tls.key')
  try {
    new X509Certificate(cert)
  } catch (error) {
    throw new TlsError(`tls.cert ${certFile} is not a PEM certificate: ${reason(error)}`, { cause: error })
  }
  try {
    createSecureContext({ cert, key })
  } catch (error) {
    const why = reason(error)
    throw new TlsError(
      /key values mismatch/i.test(why) ? `tls.key ${keyFile} does not belong to tls.cert ${certFile}` : `tls.key ${keyFile} cannot be used with tls.cert ${certFile}: ${why}`,
      { cause: error },
    )
  }
  return { cert, key }
}

/** Subject, expiry and fingerprint: what an operator checks after a reload. */
export function describeCertificate(pair: TlsPair): { subject: string; valid_to: string; fingerprint256: string } {
  const x509 = new X509Certificate(pair.cert)
  return { subject: x509.subject.replaceAll('\n', ', '), valid_to: x509.validTo, fingerprint256: x509.fingerprint256 }
}

/** A one-year self-signed certificate for localhost, 127.0.0.1 and ::1 (development only). */
async function selfSigned(): Promise<TlsPair> {
  const { generate } = await import('selfsigned')
  const notAfterDate = new Date(Date.now() + 365 * 24 * 3600 * 1000)
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    curve: 'P-256',
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    ],
  })
  return { cert: pems.cert, key: pems.private }
}

/** The pair to serve, or undefined for plain HTTP (the default). */
export async function tlsFromConfig(tls: Config['tls']): Promise<{ pair: TlsPair; reload?: () => TlsPair } | undefined> {
  if (tls.self_signed) return { pair: await selfSigned() }
  const { cert, key } = tls
  if (!cert || !key) return undefined
  return { pair: loadTlsPair(cert, key), reload: () => loadTlsPair(cert, key) }
}
