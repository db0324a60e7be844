/**
 * The library entry point (`import { presign } from 'cachegate'`): mint and check presigned
 * links from a Node service without shelling out to `cachegate sign`.
 */
export { presign, presignPayload, signPayload, verifyPresigned, encodeKeyPath, SIGNABLE_METHODS } from './auth/presign.ts'
export type { LinkPayload, PresignOptions, PresignPayload, PresignedRequest, SignableMethod } from './auth/presign.ts'
export type { PresignPayloadV2 } from './auth/payload-v2.ts'
export { createTokenMatcher, generateToken, hashToken, tokenAllows } from './auth/tokens.ts'
export type { TokenEntry } from './auth/tokens.ts'
export { generateKeyPair, publicKeyOf } from './auth/keys.ts'
export type { KeyPair } from './auth/keys.ts'
