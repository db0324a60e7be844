/** `cors:` and `stores.<id>.cors:` (issue 11): validated here, applied by src/http/cors/. */
import { z } from 'zod'
import { CORS_METHODS, parseOriginRule } from '../http/cors/origins.ts'
import { bool, number, unset } from './fields.ts'

/** A header name (RFC 9110 §5.1 token; `*` is one), compared in lower case. */
const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a header name')
  .transform((value) => value.toLowerCase())
const list = <T extends z.ZodType>(item: T) => z.preprocess(unset, z.array(item).optional())

/**
 * `cors:` (every store) and `stores.<id>.cors:` (that store; keys it leaves out come from the
 * top level, then from the defaults in `src/http/cors/policy.ts`). No section: no CORS headers.
 */
export const cors = z.preprocess(
  unset,
  z
    .object({
      allowed_origins: list(
        z.string().transform((value, ctx) => {
          try {
            parseOriginRule(value)
          } catch (error) {
            ctx.addIssue({ code: 'custom', message: (error as Error).message })
          }
          return value
        }),
      ),
      allowed_methods: list(z.string().transform((value) => value.toUpperCase()).pipe(z.enum(CORS_METHODS, { error: `must be one of ${CORS_METHODS.join(', ')}` }))),
      /** `*` allows any request header (the ones asked for are echoed, Authorization included). */
      allowed_headers: list(headerName),
      expose_headers: list(headerName),
      max_age_seconds: number.pipe(z.number().int().min(0).max(86_400)).optional(),
      allow_credentials: bool.optional(),
      allow_private_network: bool.optional(),
    })
    .strict()
    .optional(),
)

