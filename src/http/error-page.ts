/**
 * Errors a person can read: the short HTML page a link opened in a tab gets instead of the
 * JSON body (same status and headers). Everything shown is escaped, the page runs no script
 * and loads nothing, and neither the link's query (its signature) nor any detail of the
 * credential is echoed: what a page says comes from the error's class and reason.
 */
import type { ServerResponse } from 'node:http'
import { AuthError, ForbiddenError } from '../errors.ts'
import type { HttpError } from './errors.ts'

/** A page that can only show itself: no script, no images, no form, not framed, sends no Referer (the link). */
const PAGE_HEADERS = {
  'Content-Type': 'text/html; charset=utf-8',
  'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
} as const

const TITLES: Record<HttpError['status'], string> = {
  400: 'This address is not valid',
  401: 'This link cannot be used',
  403: 'This request is not allowed',
  404: 'Not found',
  405: 'This request is not supported',
  408: 'The request took too long',
  412: 'The file has changed',
  413: 'The file is too large',
  415: 'This kind of file is not accepted here',
  416: 'That part of the file does not exist',
  429: 'Too many failed attempts',
  500: 'Something went wrong',
  502: 'The storage is unavailable',
  504: 'The storage did not answer in time',
}

const SENTENCES: Partial<Record<HttpError['status'], string>> = {
  400: 'The address or the request is malformed.',
  403: 'This request is not allowed from this page.',
  404: 'There is no file at this address.',
  405: 'This address does not support this kind of request.',
  412: 'The file no longer matches the version this request was made for.',
  413: 'The upload is larger than this gateway or this link accepts.',
  415: 'This link only accepts uploads of another type.',
  416: 'The requested byte range lies outside the file.',
  429: 'Too many requests from this network failed to authenticate. Try again later.',
  500: 'The gateway could not answer. Try again later.',
  502: 'The storage behind this gateway failed. Try again later.',
  504: 'The storage behind this gateway took too long to answer. Try again later.',
}

/**
 * What each presigned-link or token failure means for the person holding the link, by
 * `AuthError.reason` (the reasons of src/auth/). A reason missing here gets the generic line.
 */
const AUTH_SENTENCES: Record<string, string> = {
  'path mismatch': 'This link is not valid for this file.',
  'bucket mismatch': 'This link is not valid for this file.',
  'method mismatch': 'This link does not allow this kind of request.',
  'bad signature': 'This link is not valid: it was changed, or was not issued for this gateway.',
  'malformed signature': 'This link is damaged. Check that it was copied completely.',
  'malformed payload': 'This link is damaged. Check that it was copied completely.',
  'unsupported version': 'This link was made for a different version of the gateway.',
  'missing credentials': 'This file can only be opened with a signed link.',
  'presigned links not enabled': 'This gateway does not accept signed links.',
  'lifetime too long': 'This link was issued for longer than this gateway allows.',
  'malformed authorization': 'The access token is malformed.',
  'bearer tokens not enabled': 'This gateway does not accept access tokens.',
  'bad token': 'The access token was not accepted.',
}

/** What each scope refusal (403 `ForbiddenError.reason`, src/auth/payload-v2.ts and tokens) means. */
const SCOPE_SENTENCES: Record<string, string> = {
  path: 'This link is not valid for this file.',
  bucket: 'This link is not valid for this file.',
  method: 'This link does not allow this kind of request.',
  ip: 'This link cannot be used from this network address.',
  'token scope': 'This access token does not allow this request.',
}

/** The sentence for an auth failure; the expiry time comes from the error's own detail (`expired at <ISO>`). */
function explainAuth(error: AuthError): string {
  if (error.reason === 'expired') {
    const at = /^expired at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?Z$/.exec(error.message)?.[1]
    return at ? `This link expired at ${at.replace('T', ' ')} UTC.` : 'This link has expired.'
  }
  if (error.reason === 'not yet valid') {
    const at = /^valid from (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?Z$/.exec(error.message)?.[1]
    return at ? `This link is not valid before ${at.replace('T', ' ')} UTC.` : 'This link is not valid yet.'
  }
  return AUTH_SENTENCES[error.reason] ?? 'This link or access token was not accepted.'
}

/** The page's heading and sentence for `error`. */
export function describeError(error: HttpError): { title: string; sentence: string } {
  const { cause } = error
  const sentence =
    cause instanceof AuthError
      ? explainAuth(cause)
      : cause instanceof ForbiddenError
        ? (SCOPE_SENTENCES[cause.reason] ?? (SENTENCES[403] as string))
        : (SENTENCES[error.status] ?? 'The request failed.')
  return { title: TITLES[error.status], sentence }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Text for HTML content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!)
}

/** The whole page. */
export function renderErrorPage(error: HttpError): string {
  const { title, sentence } = describeError(error)
  const code = [String(error.status), error.error, error.message].filter(Boolean).join(' · ')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:12vh 1.5rem;color:#222;background:#fafafa}main{max-width:34rem;margin:auto}h1{font-size:1.5rem;margin:0 0 .5rem}p{margin:0 0 1rem}.code{color:#666;font-size:.85rem}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(sentence)}</p>
<p class="code">${escapeHtml(code)}</p>
</main>
</body>
</html>
`
}

/** Writes `error` as a page (Node drops the body for HEAD); `error.headers` go out with it. */
export function sendErrorPage(outgoing: ServerResponse, error: HttpError): void {
  const html = renderErrorPage(error)
  outgoing.writeHead(error.status, { ...PAGE_HEADERS, 'Content-Length': Buffer.byteLength(html), ...error.headers })
  outgoing.end(html)
}
