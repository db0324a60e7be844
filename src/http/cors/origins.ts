/**
 * `cors.allowed_origins` entries: an exact origin, `*`, or a pattern such as
 * `https://*.example.com`. Parsed once at start-up (a bad entry is a config error); a
 * request's `Origin` is then matched with a Set lookup and a few string compares.
 */

/** The methods a CORS policy may allow: the ones the object routes answer. */
export const CORS_METHODS = ['GET', 'HEAD', 'PUT'] as const

/** One parsed `allowed_origins` entry. */
export type OriginRule =
  | { kind: 'any' }
  | { kind: 'exact'; origin: string }
  /** `scheme://*.suffix[:port]`: `*` stands for one or more DNS labels, never for nothing. */
  | { kind: 'pattern'; prefix: string; suffix: string }

const WILDCARD = 'wildcard-label'

/**
 * Parses an entry, or throws a `TypeError` saying what is wrong with it (without quoting
 * it: config errors never echo values). Origins are compared as browsers serialize them
 * (RFC 6454 §6.1: lower-case scheme and host, no default port, no path), so the entry must
 * already be in that form: `https://A.com/` is refused rather than silently never matching.
 */
export function parseOriginRule(entry: string): OriginRule {
  if (entry === '*') return { kind: 'any' }
  // `null` is the origin of sandboxed documents, file: pages and redirects across origins:
  // anyone can produce it, so allowing it by name would allow everyone.
  if (entry === 'null') throw new TypeError('"null" cannot be allowed (any sandboxed page or file: URL sends it); use "*" to allow every origin')
  const star = entry.indexOf('*')
  if (star === -1) return { kind: 'exact', origin: canonicalOrigin(entry) }
  const schemeEnd = entry.indexOf('://')
  if (schemeEnd === -1 || star !== schemeEnd + 3 || entry[star + 1] !== '.' || entry.indexOf('*', star + 1) !== -1) {
    throw new TypeError('not a valid pattern: "*" may only stand for the leading labels of the host, as in "https://*.example.com"')
  }
  const scheme = entry.slice(0, schemeEnd)
  const rest = entry.slice(star + 1) // ".example.com[:port]"
  const host = rest.slice(1).replace(/:\d+$/, '')
  if (!host.includes('.')) throw new TypeError('pattern would match every host under a top-level domain: name at least two labels after "*."')
  const canonical = canonicalOrigin(`${scheme}://${WILDCARD}${rest}`)
  const prefix = `${scheme}://`
  if (!canonical.startsWith(`${prefix}${WILDCARD}.`)) throw new TypeError('not a valid pattern')
  return { kind: 'pattern', prefix, suffix: canonical.slice(prefix.length + WILDCARD.length) }
}

/** The entry if it is a serialized origin (`scheme://host[:port]`), else a TypeError naming the right form. */
function canonicalOrigin(entry: string): string {
  let url: URL
  try {
    url = new URL(entry)
  } catch {
    throw new TypeError('not an origin: expected scheme://host[:port], e.g. "https://app.example.com"')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('not an http or https origin')
  if (url.origin !== entry) throw new TypeError('not an origin as browsers send it: scheme://host[:port] in lower case, with no path, no trailing slash and no default port')
  return url.origin
}

/** The allowed origins of one policy, matched against a request's `Origin`. */
export class OriginMatcher {
  readonly any: boolean
  readonly #exact: ReadonlySet<string>
  readonly #patterns: readonly { prefix: string; suffix: string }[]

  constructor(rules: readonly OriginRule[]) {
    this.any = rules.some((rule) => rule.kind === 'any')
    this.#exact = new Set(rules.flatMap((rule) => (rule.kind === 'exact' ? [rule.origin] : [])))
    this.#patterns = rules.flatMap((rule) => (rule.kind === 'pattern' ? [rule] : []))
  }

  /** Whether `origin` is allowed (`null` only through `*`). */
  allows(origin: string): boolean {
    if (this.any) return true
    if (this.#exact.has(origin)) return true
    for (const { prefix, suffix } of this.#patterns) {
      if (origin.length > prefix.length + suffix.length && origin.startsWith(prefix) && origin.endsWith(suffix) && isLabels(origin, prefix.length, origin.length - suffix.length)) return true
    }
    return false
  }
}

/** `origin[start, end)` is one or more DNS labels (letters, digits, hyphens; dot-separated, none empty). */
function isLabels(origin: string, start: number, end: number): boolean {
  let labelLength = 0
  for (let i = start; i < end; i++) {
    const c = origin.charCodeAt(i)
    if (c === 46 /* . */) {
      if (labelLength === 0) return false
      labelLength = 0
    } else if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 /* - */) {
      if (++labelLength > 63) return false
    } else return false
  }
  return labelLength > 0
}
