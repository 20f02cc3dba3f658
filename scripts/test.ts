// npm test: type-check, prepare a real PostgreSQL (embedded unless
// TEST_DATABASE_URL is set), migrate one template database, then run tap.
// Each test file clones the template (test/helper.ts). Ends with one line
// "N passed, N failed" counting the tests inside every file.
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { freePort, openEmbedded } from '../src/db/embedded.ts'
import { migrate } from '../src/db/migrate.ts'
import { createPool } from '../src/db/pool.ts'

const root = path.resolve(import.meta.dirname, '..')
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name)
const args = process.argv.slice(2)

if (!process.env.SKIP_TYPECHECK) {
  const typecheck = spawnSync(bin('tsc'), ['--noEmit', '-p', root], { stdio: 'inherit' })
  if (typecheck.status !== 0) {
    console.log('0 passed, 1 failed (type check)')
    process.exit(1)
  }
}

// tap compiles its plugin set into node_modules; a fresh `npm ci` has the default
// set, whose TypeScript loader we replace with Node's own type stripping
// (package.json "tap.plugin"), so build it from our config before the first
// run. Only then: a build rewrites files that another run (a second terminal)
// may be loading, which breaks that run.
const builtTap = path.join(root, 'node_modules/@tapjs/test/test-built')
const tapIsBuilt =
  fs.existsSync(path.join(builtTap, 'dist/esm/index.js')) &&
  !fs.readFileSync(path.join(builtTap, 'src/index.ts'), 'utf8').includes('@tapjs/typescript')
const tapBuild = tapIsBuilt ? undefined : spawnSync(bin('tap'), ['build'], { cwd: root, encoding: 'utf8' })
if (tapBuild && tapBuild.status !== 0) {
  console.error(tapBuild.stdout, tapBuild.stderr)
  console.log('0 passed, 1 failed (tap build)')
  process.exit(1)
}

let adminUrl = process.env.TEST_DATABASE_URL
let stopEmbedded = async () => {}
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'learning-events-test-'))
// Searchable by others: the embedded servers started here and by tests (an
// outage test stops and starts its own, whatever TEST_DATABASE_URL says) run
// as the postgres user when we are root, and must reach their data dirs.
fs.chmodSync(scratch, 0o711)
if (!adminUrl) {
  const server = await openEmbedded(scratch)
  adminUrl = server.url
  stopEmbedded = server.stop
}
// The Redis rate-limit tests get a Redis of their own when redis-server is
// installed and TEST_REDIS_URL is not set: the machine's shared one may be
// stopped, or refuse writes (MISCONF) after a restart with snapshots it cannot
// save, and neither is what those tests are about.
let testRedisUrl = process.env.TEST_REDIS_URL
let stopRedis = () => {}
if (!testRedisUrl) {
  const redis = await openPrivateRedis(scratch)
  if (redis) ({ url: testRedisUrl, stop: stopRedis } = redis)
  else console.error('redis-server is not installed: the Redis rate-limit tests use redis://127.0.0.1:6379')
}

const template = `template_${randomBytes(5).toString('hex')}`
const admin = createPool(adminUrl, { max: 1 })
await admin.unsafe(`create database "${template}"`)
const templateUrl = new URL(adminUrl)
templateUrl.pathname = `/${template}`
const templateSql = createPool(templateUrl.toString(), { max: 1 })
// The UTC day its partitions are counted from (test/helper.ts shifts a copy made on a later day).
const templateDay = new Date().toISOString().slice(0, 10)
await migrate(templateSql, { retentionDays: 30, aheadDays: 7 })
await templateSql.end()

let passed = 0
let failed = 0
let skipped = 0
const exitCode = await new Promise<number>((resolve) => {
  const tap = spawn(bin('tap'), ['--reporter=tap', ...args], {
    cwd: root,
    env: { ...process.env, TEST_ADMIN_URL: adminUrl, TEST_TEMPLATE_DB: template, TEST_TEMPLATE_DAY: templateDay, SCRATCH_DIR: scratch, ...(testRedisUrl && { TEST_REDIS_URL: testRedisUrl }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let buffer = ''
  let fileFailures = 0
  tap.stdout.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk)
    buffer += chunk.toString()
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    for (const line of lines) {
      if (/^ {4}ok \d+.*# SKIP/.test(line)) skipped++
      else if (/^ {4}ok \d+/.test(line)) passed++
      else if (/^ {4}not ok \d+/.test(line)) (failed++, fileFailures++)
      else if (/^not ok \d+/.test(line)) {
        // A file that failed without a failing test inside (crash, timeout) counts once.
        if (fileFailures === 0) failed++
        fileFailures = 0
      } else if (/^ok \d+/.test(line)) fileFailures = 0
    }
  })
  tap.on('close', (code) => resolve(code ?? 1))
})

await admin.unsafe(`drop database if exists "${template}" with (force)`).catch(() => {})
await admin.end()
await stopEmbedded()
stopRedis()
fs.rmSync(scratch, { recursive: true, force: true })
if (skipped > 0) console.log(`${skipped} skipped (their reasons are above)`)
console.log(`${passed} passed, ${failed} failed`)
process.exit(exitCode === 0 && failed === 0 ? 0 : 1)

async function openPrivateRedis(dir: string): Promise<{ url: string; stop(): void } | undefined> {
  if (spawnSync('redis-server', ['--version']).error) return undefined
  const port = await freePort()
  const server = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
  })
  const stop = () => void server.kill()
  process.on('exit', stop) // also when the run fails before its end
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await answersPing(port)) return { url: `redis://127.0.0.1:${port}`, stop }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  stop()
  throw new Error(`redis-server on port ${port} did not answer PING within 5 s`)
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
    socket.setTimeout(500, () => (socket.destroy(), resolve(false)))
    socket.on('data', (data) => (socket.destroy(), resolve(data.toString().startsWith('+PONG'))))
    socket.on('error', () => resolve(false))
  })
}
