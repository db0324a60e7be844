/**
 * The parts of `auth` that are not Cachegate's: key entries with ids, scoped tokens, and the
 * duration type of `max_link_lifetime` (schema.ts assembles them).
 */
import { z } from 'zod'
import { decodeBase64Url, isUsablePublicKey } from '../auth/keys.ts'
import { TOKEN_METHODS } from '../auth/tokens.ts'
import { parseSeconds } from './duration.ts'
import { optionalString, unset } from './fields.ts'

/** A comma-separated string (from the environment) or a list. */
const list = <T extends z.ZodType>(item: T) =>
  z.preprocess((value) => (typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : unset(value)), z.array(item))

/** A duration in whole seconds (`3600`, `1h`, `7d`): link lifetimes. */
export const wholeSeconds = z.preprocess(
  unset,
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const seconds = parseSeconds(value)
    if (seconds === undefined || seconds === 0) {
      ctx.addIssue({ code: 'custom', message: 'not a duration (examples: 3600, 30s, 10m, 1h, 7d)' })
      return z.NEVER
    }
    return seconds
  }),
)

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const idField = z.string().regex(ID, 'id must be letters, digits, ".", "_" or "-" (at most 64)')

/** A public key with an id: a link naming it (`kid`) is verified by this key only. */
export const keyEntry = z
  .object({
    id: idField,
    public_key: z
      .string()
      .refine((value) => decodeBase64Url(value)?.length === 32, { message: 'public_key must be 32 bytes of base64url without padding (see `cachegate keygen`)' })
      .refine((value) => decodeBase64Url(value)?.length !== 32 || isUsablePublicKey(value), { message: 'public_key is not a valid Ed25519 public key (small-order or not on the curve)' }),
  })
  .strict()

/** A scoped bearer token: its SHA-256 (never the token), what it may touch. */
export const tokenEntry = z
  .object({
    id: idField,
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits (`cachegate token new` prints the entry)'),
    /** Bucket ids, or `*` alone for all of them. */
    buckets: list(z.string().min(1)).pipe(z.array(z.string()).min(1, 'list at least one bucket (or "*")')),
    methods: list(z.string().transform((m) => m.toUpperCase()).pipe(z.enum(TOKEN_METHODS))).pipe(z.array(z.enum(TOKEN_METHODS)).min(1)),
    prefix: optionalString.refine((value) => value === undefined || value.endsWith('/'), { message: 'prefix must end with "/"' }),
  })
  .strict()

/** Reports each id used more than once in `entries`, at its place. */
export function uniqueIds(entries: readonly { id: string }[], ctx: z.RefinementCtx): void {
  entries.forEach(({ id }, i) => {
    if (entries.findIndex((e) => e.id === id) !== i) ctx.addIssue({ code: 'custom', message: `id "${id}" is used twice`, path: [i, 'id'] })
  })
}
