/**
 * `Accept` negotiation between the two error formats (RFC 9110 §12.5.1): a link opened in a
 * tab gets a page, every API client keeps JSON.
 */

/** q and specificity of the most specific media range matching a type (2: exact, 1: `type/*`, 0: `*\/*`). */
interface Match {
  q: number
  specificity: number
}

const NONE: Match = { q: 0, specificity: -1 }
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/**
 * True when `text/html` is preferred: its q-value (from its most specific matching range) is
 * above 0 and above `application/json`'s. A browser navigation (`text/html,...,*\/*;q=0.8`)
 * prefers HTML; `*\/*`, no header, `fetch()`'s default and curl's all get JSON.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined || accept === '') return false
  let html = NONE
  let json = NONE
  for (const range of accept.split(',')) {
    const params = range.split(';')
    const type = params[0]!.trim().toLowerCase()
    let q = 1
    for (let i = 1; i < params.length; i++) {
      const param = params[i]!
      const eq = param.indexOf('=')
      if (eq === -1 || param.slice(0, eq).trim().toLowerCase() !== 'q') continue
      const value = param.slice(eq + 1).trim()
      // A malformed weight makes the range unusable rather than a full preference.
      q = QVALUE.test(value) ? Number(value) : -1
    }
    if (q < 0) continue
    html = better(html, type, 'text', 'text/html', q)
    json = better(json, type, 'application', 'application/json', q)
  }
  return html.q > 0 && html.q > json.q
}

/** `current`, or `type`'s match for `exact` if more specific (the higher q of equally specific ones). */
function better(current: Match, type: string, major: string, exact: string, q: number): Match {
  const specificity = type === exact ? 2 : type === `${major}/*` ? 1 : type === '*/*' ? 0 : -1
  if (specificity < 0 || specificity < current.specificity) return current
  if (specificity === current.specificity && q <= current.q) return current
  return { q, specificity }
}
