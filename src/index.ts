/**
 * The library entry point (`import { presign } from 'cachegate'`): mint and check presigned
 * links from a Node service without shelling out to `cachegate sign`.
 */
export { presign, signPayload, verifyPresigned, encodeKeyPath, SIGNABLE_METHODS } from './auth/presign.ts'
export type { PresignOptions, PresignPayload, PresignedRequest, SignableMethod } from './auth/presign.ts'
export { generateKeyPair, publicKeyOf } from './auth/keys.ts'
export type { KeyPair } from './auth/keys.ts'
