/**
 * s3rver in its own process (so it runs on the server core, not in the harness):
 * prints `{"msg":"s3rver","endpoint":...,"bucket":...}` and serves until SIGTERM.
 *
 * s3rver 3.7 accepts anonymous requests (its authentication middleware passes a request
 * with no Authorization header and no signature query straight through, and it enforces no
 * ACL or bucket policy), which is how nginx reads the same bucket without a SigV4 signer.
 * It does not check SigV4 signatures either ("Signature version 4 calculation is
 * unimplemented"), so signed and anonymous GETs cost it the same.
 */
import { startS3rver } from '../../test/helpers/emulators.ts'

const s3 = await startS3rver()
process.stdout.write(`${JSON.stringify({ msg: 's3rver', endpoint: s3.endpoint, bucket: s3.bucket })}\n`)
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void s3.close().finally(() => process.exit(0))
  })
}
