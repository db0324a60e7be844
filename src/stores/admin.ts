import type { Store, StoreAdmin } from './types.ts'

const ADMIN_METHODS = ['list', 'delete', 'copy', 'createMultipart', 'uploadPart', 'completeMultipart', 'abortMultipart', 'listParts'] as const satisfies readonly (keyof StoreAdmin)[]

/**
 * The StoreAdmin methods `store` has, bound to it, for a wrapper that passes them through
 * unchanged: a wrapper has a method exactly when its store does (the S3 front end answers
 * NotImplemented for one it lacks).
 *
 * @example
 * return { type, id, head, get, put, ...adminOf(store) }
 */
export function adminOf(store: Store): Partial<StoreAdmin> {
  const admin: Record<string, unknown> = {}
  for (const name of ADMIN_METHODS) {
    const method = store[name]
    if (method) admin[name] = method.bind(store)
  }
  return admin as Partial<StoreAdmin>
}
