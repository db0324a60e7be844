/**
 * The S3 front end through the AWS CLI and rclone (clients nobody here wrote), each with a
 * fresh HOME and config so the machine's own never leaks in. Skipped, saying so, where the tool
 * is not installed (.ci/run installs both).
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type TestGateway, tempDir } from './helpers/gateway.ts'
import { FULL, REGION, startS3Gateway } from './helpers/s3-gateway.ts'

function works(command: string, args: string[]): boolean {
  const run = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 })
  return run.status === 0
}

const hasAws = works('aws', ['--version'])
const hasRclone = works('rclone', ['version'])

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

async function ok(command: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<string> {
  const result = await run(command, args, env, cwd)
  assert.equal(result.code, 0, `${command} ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

/** A small tree: nested directories, a name with a space and a plus, an empty file. */
async function makeTree(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>([
    ['a.txt', Buffer.from('alpha\n')],
    ['dir/b.bin', randomBytes(70_000)],
    ['dir/sub/c d+e.txt', Buffer.from('spaces and plus\n')],
    ['empty.txt', Buffer.alloc(0)],
  ])
  for (const [name, bytes] of files) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true })
    await writeFile(path.join(root, name), bytes)
  }
  return files
}

async function readTree(root: string, prefix = ''): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  for (const entry of await readdir(path.join(root, prefix), { withFileTypes: true })) {
    const name = prefix ? `${prefix}/${entry.name}` : entry.name
    if (entry.isDirectory()) for (const [k, v] of await readTree(root, name)) out.set(k, v)
    else out.set(name, await readFile(path.join(root, name)))
  }
  return out
}

describe('S3 API through the AWS CLI and rclone', () => {
  let gw: TestGateway
  let home: string
  before(async () => {
    gw = await startS3Gateway()
    home = await tempDir('cachegate-s3-cli-')
  })
  after(() => gw?.close())

  it('aws s3 cp (multipart over the 8 MiB threshold), ls and sync', { skip: !hasAws && 'aws CLI not installed' }, async () => {
    await writeFile(path.join(home, 'config'), `[default]\nregion = ${REGION}\ns3 =\n    addressing_style = path\n`)
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: home,
      AWS_CONFIG_FILE: path.join(home, 'config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'credentials'),
      AWS_ACCESS_KEY_ID: FULL.accessKeyId,
      AWS_SECRET_ACCESS_KEY: FULL.secretAccessKey,
      AWS_DEFAULT_REGION: REGION,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_PAGER: '',
    }
    const aws = (...args: string[]) => ok('aws', ['--endpoint-url', gw.url, ...args], env)
    const big = randomBytes(12 * 1024 * 1024 + 123)
    await writeFile(path.join(home, 'big.bin'), big)
    const posts = async () => Number(/^cachegate_requests_total\{method="POST",status="200"\} (\d+)$/m.exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1] ?? 0)
    const postsBefore = await posts()
    await aws('s3', 'cp', path.join(home, 'big.bin'), 's3://local/cli/big.bin')
    // Over the CLI's 8 MiB threshold: CreateMultipartUpload and CompleteMultipartUpload are POSTs.
    assert.equal((await posts()) - postsBefore, 2)
    await aws('s3', 'cp', 's3://local/cli/big.bin', path.join(home, 'big-down.bin'))
    assert.ok((await readFile(path.join(home, 'big-down.bin'))).equals(big))
    const listing = await aws('s3', 'ls', 's3://local/cli/')
    assert.match(listing, new RegExp(`\\s${big.length} big\\.bin`))

    const tree = await makeTree(path.join(home, 'tree'))
    await aws('s3', 'sync', path.join(home, 'tree'), 's3://local/synced/')
    const recursive = await aws('s3', 'ls', '--recursive', 's3://local/synced/')
    for (const name of tree.keys()) assert.ok(recursive.includes(`synced/${name}`), `${name} listed in:\n${recursive}`)
    await aws('s3', 'sync', 's3://local/synced/', path.join(home, 'tree-back'))
    assert.deepEqual(await readTree(path.join(home, 'tree-back')), tree)
  })

  it('rclone copy and check of a directory tree', { skip: !hasRclone && 'rclone not installed' }, async () => {
    const configFile = path.join(home, 'rclone.conf')
    await writeFile(configFile, '')
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: home,
      RCLONE_CONFIG: configFile,
      RCLONE_CONFIG_CG_TYPE: 's3',
      RCLONE_CONFIG_CG_PROVIDER: 'Other',
      RCLONE_CONFIG_CG_ACCESS_KEY_ID: FULL.accessKeyId,
      RCLONE_CONFIG_CG_SECRET_ACCESS_KEY: FULL.secretAccessKey,
      RCLONE_CONFIG_CG_ENDPOINT: gw.url,
      RCLONE_CONFIG_CG_REGION: REGION,
      RCLONE_CONFIG_CG_FORCE_PATH_STYLE: 'true',
    }
    const tree = await makeTree(path.join(home, 'rtree'))
    await ok('rclone', ['copy', path.join(home, 'rtree'), 'cg:local/rclone'], env)
    // By size and hash where both sides have one, then byte for byte.
    await ok('rclone', ['check', path.join(home, 'rtree'), 'cg:local/rclone'], env)
    await ok('rclone', ['check', '--download', path.join(home, 'rtree'), 'cg:local/rclone'], env)
    await ok('rclone', ['copy', 'cg:local/rclone', path.join(home, 'rtree-back')], env)
    assert.deepEqual(await readTree(path.join(home, 'rtree-back')), tree)
    // A changed file is a difference rclone check reports.
    await writeFile(path.join(home, 'rtree', 'a.txt'), 'changed\n')
    const changed = await run('rclone', ['check', '--download', path.join(home, 'rtree'), 'cg:local/rclone'], env)
    assert.notEqual(changed.code, 0)
  })
})
