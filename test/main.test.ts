// `npm start` on a fresh DATA_DIR: boots the embedded database, prints a URL, a
// token and a curl example that work, and stops everything cleanly on SIGTERM;
// on a port already taken, a HOST that does not resolve or an API that cannot
// be built, it says so in one line and stops the database too.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { testDatabase, testPool } from './helper.ts'

/** `npm start` (src/main.ts) on a fresh DATA_DIR, with the embedded database; killed at the end of the test if still running. */
function startMain(t: Test, port: number, extraEnv: Record<string, string> = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'start-'))
  fs.chmodSync(dataDir, 0o711)
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const { DATABASE_URL: _ignored, ...env } = process.env
  const child = spawn(process.execPath, [fileURLToPath(new URL('../src/main.ts', import.meta.url))], {
    env: { ...env, DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'warn', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => child.exitCode === null && child.kill('SIGKILL'))
  return { child, dataDir }
}

t.test('npm start: working URL and dev token, clean stop', async (t) => {
  // With an issuer and audience set the API checks them, so the printed token must carry them.
  const { child, dataDir } = startMain(t, 0, { AUTH_ISSUER: 'https://lms.example', AUTH_AUDIENCE: 'learning-events' })
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  for (let i = 0; i < 600 && !output.includes('Stop with Ctrl-C'); i++) await new Promise((r) => setTimeout(r, 100))
  t.match(output, /Stop with Ctrl-C/, 'the service started and printed its instructions')

  const url = output.match(/API\s+(http:\/\/[\d.:]+)/)?.[1]
  const token = output.match(/Bearer ([\w-]+\.[\w-]+\.[\w-]+)/)?.[1]
  const curlBody = output.match(/-d '(\{.*\})'/)?.[1]
  t.ok(url && token && curlBody, 'URL, token and curl body are printed')
  const res = await fetch(`${url}/api/client/progress/batch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: curlBody,
  })
  t.equal(res.status, 200)
  t.same(await res.json(), { accepted: 1, duplicates: 0, deferred: 0, rejected: [] }, 'the printed example is accepted')

  const demo = output.match(/SDK demo\s+(http:\S+)/)?.[1]
  t.equal(demo, `${url}/demo`, 'the demo page is printed')
  const page = await fetch(demo!)
  t.equal(page.status, 200, 'the demo page is served without npm run build:sdk')
  const bundle = await fetch(`${url}/sdk/ingest-client.js`)
  t.equal(bundle.status, 200)
  t.match(await bundle.text(), /createIngestClient/, 'the SDK bundle it loads is served')

  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  // Twice, as one Ctrl-C can arrive from a terminal and again through npm: the copy must not cut the drain short.
  child.kill('SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 50))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'exits 0 on SIGTERM, delivered twice')
  t.notOk(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'the embedded server was stopped')
  t.ok(fs.existsSync(path.join(dataDir, 'dev-secrets.json')))
})

t.test('a taken port stops npm start with one line, and the embedded server it started with it', async (t) => {
  const taken = net.createServer().listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const port = (taken.address() as net.AddressInfo).port
  const { child, dataDir } = startMain(t, port)
  let stderr = ''
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const [code] = await once(child, 'exit')
  t.equal(code, 1, 'exits 1')
  t.equal(stderr, `cannot listen on 127.0.0.1:${port}: the address is in use (another process listens there: stop it, or set PORT)\n`, 'one line on stderr, no stack trace')
  t.notOk(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'the embedded server it started was stopped')
})

t.test('a taken METRICS_PORT stops npm start with one line naming it', async (t) => {
  const taken = net.createServer().listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const port = (taken.address() as net.AddressInfo).port
  const { child, dataDir } = startMain(t, 0, { METRICS_PORT: String(port) })
  let stderr = ''
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const [code] = await once(child, 'exit')
  t.equal(code, 1, 'exits 1')
  t.equal(stderr, `cannot listen on 127.0.0.1:${port}: the address is in use (another process listens there: stop it, or set METRICS_PORT)\n`)
  t.notOk(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'the embedded server it started was stopped')
})

t.test('a HOST that does not resolve stops npm start with one line naming HOST, and the embedded server with it', async (t) => {
  const { child, dataDir } = startMain(t, 0, { HOST: 'no.such.host.invalid' })
  let stderr = ''
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const [code] = await once(child, 'exit')
  t.equal(code, 1, 'exits 1')
  // ENOTFOUND, or EAI_AGAIN where no DNS server answers at all.
  t.match(stderr, /^cannot listen on no\.such\.host\.invalid:0: [^\n]*(no such host|could not be resolved)[^\n]*HOST[^\n]*\n$/, 'one line on stderr, no stack trace')
  t.notOk(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'the embedded server it started was stopped')
})

t.test('an API that fails to build stops with one line and releases the database', async (t) => {
  // Building the app fails before any listen: here on the dev secret, as DATA_DIR cannot be made
  // (config would have refused it; any plugin throwing at registration takes the same path).
  const moduleUrl = (file: string) => JSON.stringify(new URL(file, import.meta.url).href)
  const script = `
    import { startApiOrExit } from ${moduleUrl('../src/api/server.ts')}
    import { loadConfig } from ${moduleUrl('../src/config.ts')}
    const config = loadConfig({ DATA_DIR: '/dev/null/data', PORT: '0' })
    await startApiOrExit(config, { url: 'postgres://127.0.0.1:1/none', embedded: true, release: async () => console.log('released') })`
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60000 })
  t.equal(result.status, 1, 'exits 1')
  t.match(result.stderr, /^cannot start the API: ENOTDIR: [^\n]*\/dev\/null\/data[^\n]*\n$/, "one line with the error's message, not its stack")
  t.equal(result.stdout, 'released\n', 'the database was released')
})

t.test('npm start on DATABASE_URL writes no demo data and prints no token', async (t) => {
  const url = await testDatabase(t)
  const { child } = startMain(t, 0, { DATABASE_URL: url, AUTH_JWT_SECRET: 'x'.repeat(40) })
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  for (let i = 0; i < 600 && !output.includes('Stop with Ctrl-C'); i++) await new Promise((r) => setTimeout(r, 100))
  t.match(output, /DATABASE_URL \(no demo data written to it\)/, 'the service started on it')
  t.match(output, /npm run token -- --user ID --org ORG/, 'it says how to mint a token')
  t.notMatch(output, /Bearer |Dev token/, 'no 30-day token signed with the real secret')
  const sql = testPool(t, url)
  const [row] = await sql<{ n: number }[]>`select (select count(*) from courses) + (select count(*) from assignments) as n`
  t.equal(Number(row!.n), 0, 'no demo org, course or assignment in what may be a production database')
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  t.equal((await exited)[0], 0)
})

t.test('npm start killed outright (SIGKILL): its worker stops too, rather than run on orphaned', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const { child } = startMain(t, 0, { DATABASE_URL: url, AUTH_JWT_SECRET: 'x'.repeat(40) })
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  const workerConnections = async () =>
    (await sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'learning-events-worker'`)[0]!.n
  for (let i = 0; i < 600 && !(output.includes('Stop with Ctrl-C') && (await workerConnections()) > 0); i++) await new Promise((r) => setTimeout(r, 100))
  t.ok((await workerConnections()) > 0, 'the worker is running')
  child.kill('SIGKILL')
  for (let i = 0; i < 450 && (await workerConnections()) > 0; i++) await new Promise((r) => setTimeout(r, 100))
  t.equal(await workerConnections(), 0, 'the worker stopped within 45 s and closed its connections')
})

t.test('Ctrl-C while npm start is still starting stops the embedded server it started, and starts nothing more', async (t) => {
  const { child, dataDir } = startMain(t, 0)
  const lockFile = path.join(dataDir, 'pg', 'postmaster.pid')
  t.teardown(() => fs.existsSync(lockFile) && process.kill(Number.parseInt(fs.readFileSync(lockFile, 'utf8'), 10))) // on failure: no server left behind
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  for (let i = 0; i < 3000 && !output.includes('embedded PostgreSQL: started'); i++) await new Promise((r) => setTimeout(r, 20))
  t.match(output, /embedded PostgreSQL: started/, 'the database started')
  // The server runs detached: only this process's handler can stop it. The
  // signal lands while the new database is being migrated.
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGINT')
  t.equal(await exited, 0, 'exits 0')
  t.notMatch(output, /is running/, 'the start went no further')
  t.match(output, /embedded PostgreSQL: stopped/, 'it says the database stopped')
  t.notOk(fs.existsSync(lockFile), 'the embedded server is not running')
})
