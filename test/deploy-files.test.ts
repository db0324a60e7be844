/**
 * Issue 14: the deployment files under deploy/ checked offline, as far as this machine allows
 * (no Docker daemon, no cluster): nginx -t on every nginx configuration shipped (nginx 1.22
 * here: the `resolve` of compose and k8s, nginx >= 1.27.3, is taken out for the check), the
 * compose file against the Dockerfile, the Kubernetes objects against each other, every
 * shipped gateway configuration through the gateway's own validation, and the systemd unit
 * through systemd-analyze. What cannot be checked here is listed in README "Running a fleet".
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, it } from 'node:test'
import { parse, parseAllDocuments, stringify } from 'yaml'
import { generateKeyPair } from '../src/auth/keys.ts'
import { loadConfig, validateConfig } from '../src/config/load.ts'
import { BEARER, ROOT, rawRequest, startGateway, tempDir } from './helpers/gateway.ts'
import { NGINX, mainConf, nginxTest } from './helpers/nginx-front.ts'

const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8')
const DOCKERFILE = read('Dockerfile')
const dummyKey = generateKeyPair().public_key
type Obj = Record<string, any>

/** `server` lines' addresses of an upstream list. */
const serversOf = (text: string) => [...text.matchAll(/^\s*server\s+(\S+)/gm)].map((m) => m[1]!)

/**
 * nginx -t on the shipped cachegate.conf with `listen` and `upstreams` as the per-deployment
 * files. Names are mapped to 127.0.0.1 and `resolve`/`resolver` (nginx >= 1.27.3) dropped when
 * this nginx is older, since it could neither resolve the names nor parse the parameter.
 */
async function nginxCheck(listen: string, upstreams: string, conf = read('deploy/nginx/cachegate.conf')) {
  const dir = await tempDir('cachegate-nginx-t-')
  await mkdir(path.join(dir, 'client_body'), { recursive: true })
  const offline = upstreams
    .replace(/^\s*resolver\s.*$/gm, '')
    .replace(/\sresolve;/g, ';')
    .replace(/^(\s*server\s+)[^:\s]+:(\d+)/gm, '$1127.0.0.1:$2')
  await writeFile(path.join(dir, 'cachegate-listen.conf'), listen)
  await writeFile(path.join(dir, 'cachegate-upstreams.conf'), offline)
  await writeFile(path.join(dir, 'cachegate.conf'), conf)
  await writeFile(path.join(dir, 'nginx.conf'), mainConf(dir, path.join(dir, 'cachegate.conf')))
  return nginxTest(path.join(dir, 'nginx.conf'), dir)
}

/**
 * A gateway config as `--config env` loads it (CACHEGATE_CONFIG = `base` as YAML, flat
 * variables over it), placeholders filled, through the gateway's own validation.
 */
function validateFlat(env: Record<string, string>, base?: unknown) {
  const filled = Object.fromEntries(
    Object.entries(env).map(([k, v]) => {
      if (/PUBLIC_KEY$/.test(k)) return [k, dummyKey]
      if (/BEARER_TOKEN$/.test(k)) return [k, BEARER]
      return [k, v.replace(/\$\{[^}]+\}/g, 'x')]
    }),
  )
  return loadConfig('env', base === undefined ? filled : { ...filled, CACHEGATE_CONFIG: stringify(base) })
}

describe('deploy/nginx', { skip: NGINX ? false : 'nginx not installed' }, () => {
  it('nginx -t passes on cachegate.conf with the shipped listen and upstream files', async () => {
    const result = await nginxCheck(read('deploy/nginx/cachegate-listen.conf'), read('deploy/nginx/cachegate-upstreams.conf'))
    assert.equal(result.code, 0, result.output)
    assert.match(result.output, /test is successful/)
  })

  it('the check can fail: nginx -t refuses a broken cachegate.conf', async () => {
    const broken = read('deploy/nginx/cachegate.conf').replace('hash $uri consistent;', 'hash $uri consistent')
    const result = await nginxCheck(read('deploy/nginx/cachegate-listen.conf'), read('deploy/nginx/cachegate-upstreams.conf'), broken)
    assert.notEqual(result.code, 0)
  })

  it('hashes on $uri, consistent; streams both ways; retries GET/HEAD only; upload limit = cache.max_upload_size default', () => {
    const conf = read('deploy/nginx/cachegate.conf').replace(/#.*$/gm, '')
    assert.equal(conf.match(/hash \$uri consistent;/g)?.length, 2, 'both upstreams, the same ring')
    for (const directive of ['proxy_buffering off;', 'proxy_request_buffering off;', 'proxy_http_version 1.1;', 'proxy_set_header Connection "";', 'proxy_next_upstream off;', 'proxy_next_upstream error timeout;']) {
      assert.ok(conf.includes(directive), directive)
    }
    // No URI part anywhere: the raw request line goes upstream.
    for (const m of conf.matchAll(/proxy_pass\s+([^;]+);/g)) assert.match(m[1]!, /^http:\/\/[\w$]+$/, m[0])
    const limit = /client_max_body_size\s+(\d+)g;/.exec(conf)
    assert.equal(Number(limit?.[1]) * 2 ** 30, validateConfig({ auth: { bearer_token: BEARER }, stores: { a: { type: 'fs', root: '.' } } }).cache.max_upload_size)
  })
})

describe('deploy/compose', () => {
  const compose = parse(read('deploy/compose/docker-compose.yml'), { merge: true }) as Obj
  const services = compose.services as Record<string, Obj>
  const gateways = Object.entries(services).filter(([, s]) => s.image === 'cachegate:latest')
  const cacheDir = /mkdir -p (\S+)/.exec(DOCKERFILE)?.[1]

  it('3 gateways built from the repository Dockerfile, each with its own disk tier volume at the directory the image creates', () => {
    assert.equal(gateways.length, 3)
    assert.ok(cacheDir)
    const volumes = new Set<string>()
    for (const [name, service] of gateways) {
      assert.ok(existsSync(path.join(ROOT, 'deploy/compose', service.build, 'Dockerfile')), `${name}: build context has the Dockerfile`)
      const [volume, mount] = (service.volumes[0] as string).split(':')
      assert.equal(mount, cacheDir, name)
      assert.equal(service.environment.CACHEGATE__CACHE__DISK_PATH, cacheDir, name)
      assert.ok(volume! in compose.volumes, `${volume} declared`)
      volumes.add(volume!)
      // The port the image exposes (and its HEALTHCHECK assumes).
      assert.equal(service.environment.CACHEGATE__LISTEN, `0.0.0.0:${/EXPOSE (\d+)/.exec(DOCKERFILE)?.[1]}`)
    }
    assert.equal(volumes.size, 3, 'a volume per gateway')
  })

  it("nginx lists exactly the gateway services, mounts files that exist, and is the gateways' trusted proxy", async () => {
    const nginx = services.nginx!
    for (const mount of nginx.volumes as string[]) assert.ok(existsSync(path.join(ROOT, 'deploy/compose', mount.split(':')[0]!)), mount)
    const upstreams = read('deploy/compose/nginx/cachegate-upstreams.conf')
    assert.deepEqual(serversOf(upstreams), gateways.map(([name]) => `${name}:8080`))
    assert.match(nginx.image, /^nginx:1\.(2[89]|[3-9]\d)/, '`resolve` needs nginx >= 1.27.3')
    for (const [, service] of gateways) assert.equal(service.environment.CACHEGATE__TRUST_PROXY, nginx.networks.fleet.ipv4_address)
    if (NGINX) {
      const result = await nginxCheck(read('deploy/nginx/cachegate-listen.conf'), upstreams)
      assert.equal(result.code, 0, result.output)
    }
  })

  it("every gateway's environment is a valid gateway config", () => {
    for (const [name, service] of gateways) assert.doesNotThrow(() => validateFlat(service.environment), name)
  })
})

describe('deploy/k8s', () => {
  const all = ['namespace.yaml', 'gateway.yaml', 'nginx.yaml', 'secret.example.yaml'].flatMap((f) => parseAllDocuments(read(`deploy/k8s/${f}`)).map((d) => d.toJS() as Obj))
  const find = (kind: string, name: string) => all.find((o) => o.kind === kind && o.metadata.name === name)!
  const sts = find('StatefulSet', 'cachegate')
  const pod = sts.spec.template.spec
  const container = pod.containers[0]
  const config = parse(find('ConfigMap', 'cachegate-config').data['config.yaml'])

  it('kubectl kustomize builds deploy/k8s', { skip: spawnSync('kubectl', ['version', '--client']).status === 0 ? false : 'kubectl not installed' }, () => {
    const out = spawnSync('kubectl', ['kustomize', path.join(ROOT, 'deploy/k8s')], { encoding: 'utf8' })
    assert.equal(out.status, 0, out.stderr)
    assert.deepEqual([...out.stdout.matchAll(/^kind: (\w+)/gm)].map((m) => m[1]).sort(), ['ConfigMap', 'ConfigMap', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'Service', 'Service', 'StatefulSet'])
  })

  it('StatefulSet, headless Service, PVC per pod, probes and PDB fit together', () => {
    const svc = find('Service', sts.spec.serviceName)
    assert.equal(svc.spec.clusterIP, 'None', 'headless')
    assert.equal(svc.spec.publishNotReadyAddresses, false, 'a pod that is not ready leaves DNS, and nginx')
    const labels = pod && sts.spec.template.metadata.labels
    for (const selector of [sts.spec.selector.matchLabels, svc.spec.selector, find('PodDisruptionBudget', 'cachegate').spec.selector.matchLabels]) {
      for (const [k, v] of Object.entries(selector)) assert.equal(labels[k], v)
    }
    assert.equal(find('PodDisruptionBudget', 'cachegate').spec.maxUnavailable, 1)
    const claim = sts.spec.volumeClaimTemplates[0].metadata.name
    const mount = container.volumeMounts.find((m: Obj) => m.name === claim)
    assert.equal(mount.mountPath, config.cache.disk_path)
    assert.equal(mount.mountPath, /mkdir -p (\S+)/.exec(DOCKERFILE)?.[1])
    assert.equal(container.livenessProbe.httpGet.path, '/health')
    assert.equal(container.readinessProbe.httpGet.path, '/health/ready')
    assert.ok(pod.terminationGracePeriodSeconds > config.shutdown.drain_seconds + config.shutdown.grace_seconds)
    assert.equal(container.ports.find((p: Obj) => p.name === 'http').containerPort, Number(config.listen.split(':')[1]))
    assert.equal(container.env[0].valueFrom.configMapKeyRef.name, 'cachegate-config')
    assert.equal(container.envFrom[0].secretRef.name, find('Secret', 'cachegate-secrets').metadata.name)
  })

  it('the ConfigMap plus the Secret make a valid gateway config, and a gateway answers both probe paths', async () => {
    const parsed = validateFlat(find('Secret', 'cachegate-secrets').stringData, config)
    assert.equal(parsed.shutdown.drain_seconds, config.shutdown.drain_seconds)
    const gw = await startGateway()
    try {
      for (const probe of [container.livenessProbe, container.readinessProbe]) assert.equal((await rawRequest(gw.url, 'GET', probe.httpGet.path)).status, 200, probe.httpGet.path)
    } finally {
      await gw.close()
    }
  })

  it("nginx's ConfigMap: cachegate.conf verbatim, the upstream list is the StatefulSet's pod names, and nginx -t passes", async () => {
    const data = find('ConfigMap', 'cachegate-nginx').data
    assert.equal(data['cachegate.conf'], read('deploy/nginx/cachegate.conf'))
    const ns = sts.metadata.namespace
    const expected = Array.from({ length: sts.spec.replicas }, (_, i) => `${sts.metadata.name}-${i}.${sts.spec.serviceName}.${ns}.svc.cluster.local:${config.listen.split(':')[1]}`)
    assert.deepEqual(serversOf(data['cachegate-upstreams.conf']), expected)
    for (const line of data['cachegate-upstreams.conf'].split('\n').filter((l: string) => /^\s*server\s/.test(l))) assert.match(line, / resolve;$/, line)
    const deployment = find('Deployment', 'cachegate-nginx')
    assert.match(deployment.spec.template.spec.containers[0].image, /^nginx:1\.(2[89]|[3-9]\d)/)
    if (NGINX) {
      const result = await nginxCheck(data['cachegate-listen.conf'], data['cachegate-upstreams.conf'], data['cachegate.conf'])
      assert.equal(result.code, 0, result.output)
    }
  })
})

describe('deploy/systemd', () => {
  const unit = read('deploy/systemd/cachegate@.service')

  it('systemd-analyze verify accepts cachegate@8081.service', { skip: spawnSync('systemd-analyze', ['--version']).status === 0 ? false : 'no systemd-analyze' }, async () => {
    const dir = await tempDir('cachegate-systemd-')
    await writeFile(path.join(dir, 'cachegate@.service'), unit)
    const out = spawnSync('systemd-analyze', ['verify', path.join(dir, 'cachegate@8081.service')], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_LEVEL: 'warning' } })
    assert.equal(out.status, 0, out.stderr)
    // The check can fail: an unknown directive is reported.
    await writeFile(path.join(dir, 'broken@.service'), unit.replace('[Service]', '[Service]\nExecStrat=/bin/true'))
    const broken = spawnSync('systemd-analyze', ['verify', path.join(dir, 'broken@8081.service')], { encoding: 'utf8' })
    assert.match(broken.stderr, /ExecStrat/)
  })

  it('the unit plus cachegate.env.example make a valid config per instance; ExecStart runs the shipped bin; nginx upstreams are its instances', () => {
    const env: Record<string, string> = {}
    for (const line of read('deploy/systemd/cachegate.env.example').split('\n')) {
      const m = /^([A-Z_a-z0-9]+)=(.*)$/.exec(line)
      if (m) env[m[1]!] = m[2]!
    }
    for (const m of unit.matchAll(/^Environment=([^=]+)=(.*)$/gm)) env[m[1]!] = m[2]!.replaceAll('%i', '8081')
    const config = validateFlat(env)
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8081 })
    assert.equal(config.cache.disk_path, '/var/cache/cachegate/8081')
    assert.match(unit, /^CacheDirectory=cachegate\/%i$/m)
    const script = /^ExecStart=\S+ .*\/opt\/cachegate\/(\S+) --config env$/m.exec(unit)?.[1]
    assert.ok(script && existsSync(path.join(ROOT, script)), `ExecStart script ${script}`)
    assert.deepEqual(serversOf(read('deploy/nginx/cachegate-upstreams.conf')), ['127.0.0.1:8081', '127.0.0.1:8082', '127.0.0.1:8083'])
  })
})

