/** The store errors of the S3 front end's operations, as HTTP answers them. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BadRequestError, InvalidPartError, NoSuchUploadError, NotFoundError } from '../src/errors.ts'
import { toHttpError } from '../src/http/errors.ts'

describe('multipart errors over HTTP', () => {
  it('NoSuchUploadError is a 404 "no such upload", and still a NotFoundError', () => {
    const error = new NoSuchUploadError('no such multipart upload')
    assert.ok(error instanceof NotFoundError)
    assert.equal(error.name, 'NoSuchUploadError')
    assert.deepEqual(toHttpError(error), { status: 404, error: 'no such upload', message: 'no such multipart upload' })
  })

  it('InvalidPartError is a 400 "invalid part", and still a BadRequestError', () => {
    const error = new InvalidPartError('part 2 has another ETag')
    assert.ok(error instanceof BadRequestError)
    assert.equal(error.name, 'InvalidPartError')
    assert.deepEqual(toHttpError(error), { status: 400, error: 'invalid part', message: 'part 2 has another ETag' })
  })
})
