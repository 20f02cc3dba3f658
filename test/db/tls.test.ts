// DATABASE_URL's TLS parameters mean what libpq says, for both drivers: the
// pools (postgres.js) and the job queue (pg-boss on node-postgres). Against a
// private server whose certificate no public CA signed (as Supabase's and
// RDS's are, to Node), names only `localhost`.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { startFailure } from '../../src/db/database.ts'
import { openEmbedded } from '../../src/db/embedded.ts'
import { createPool } from '../../src/db/pool.ts'
import { startBoss } from '../../src/jobs/boss.ts'

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-'))
fs.chmodSync(dataDir, 0o711)
const server = await openEmbedded(dataDir)
t.teardown(async () => {
  await server.stop()
  fs.rmSync(dataDir, { recursive: true, force: true })
})

// A self-signed certificate for localhost, readable by the server's user only.
const pgDir = path.join(dataDir, 'pg')
const certFile = path.join(pgDir, 'server.crt')
const keyFile = path.join(pgDir, 'server.key')
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
  '-addext', 'subjectAltName=DNS:localhost', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' })
const owner = fs.statSync(pgDir)
for (const file of [certFile, keyFile]) {
  fs.chownSync(file, owner.uid, owner.gid)
  fs.chmodSync(file, 0o600)
}
const admin = createPool(server.url, { max: 1 })
await admin.unsafe(`alter system set ssl_cert_file = '${certFile}'`)
await admin.unsafe(`alter system set ssl_key_file = '${keyFile}'`)
await admin.unsafe('alter system set ssl = on')
await admin.unsafe('select pg_reload_conf()')
await admin.end()

/** The server's URL with another host and these parameters. */
function urlWith(host: string, query: string): string {
  const url = new URL(server.url)
  url.hostname = host
  return `${url.toString()}?${query}`
}

/** Whether a pool's connection is encrypted; rejects as the connection does. */
async function poolUsesTls(url: string): Promise<boolean> {
  const sql = createPool(url, { max: 1, connectTimeout: 5 })
  try {
    const [row] = await sql<{ ssl: boolean }[]>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`
    return row!.ssl
  } finally {
    await sql.end({ timeout: 1 })
  }
}

/** Whether every connection pg-boss opened is encrypted; rejects as its start does. */
async function jobQueueUsesTls(url: string): Promise<boolean> {
  const boss = await startBoss({ url, definitions: [], role: 'producer', applicationName: 'tls-test-queue' })
  try {
    const sql = createPool(server.url, { max: 1 })
    const rows = await sql<{ ssl: boolean }[]>`
      select s.ssl from pg_stat_activity a join pg_stat_ssl s using (pid) where a.application_name = 'tls-test-queue'`
    await sql.end()
    return rows.length > 0 && rows.every((row) => row.ssl)
  } finally {
    await boss.stop({ graceful: false, close: true })
  }
}

// The reload is asynchronous: wait until the server offers TLS.
for (let attempt = 0; ; attempt++) {
  try {
    if (await poolUsesTls(urlWith('127.0.0.1', 'sslmode=require'))) break
  } catch (error) {
    if (attempt > 50) throw error
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
}

t.test('sslmode=require encrypts without verifying, for the pools and the job queue alike', async (t) => {
  const url = urlWith('127.0.0.1', 'sslmode=require')
  t.equal(await poolUsesTls(url), true)
  // node-postgres alone reads require as verify-full: the worker could not start.
  t.equal(await jobQueueUsesTls(url), true)
})

t.test('verify-full with sslrootcert checks the chain and the host name', async (t) => {
  const trusted = `sslmode=verify-full&sslrootcert=${encodeURIComponent(certFile)}`
  t.equal(await poolUsesTls(urlWith('localhost', trusted)), true, 'the pool trusts the named root')
  t.equal(await jobQueueUsesTls(urlWith('localhost', trusted)), true, 'so does the job queue')
  // The certificate names localhost, not 127.0.0.1: libpq refuses, and so must both.
  await t.rejects(poolUsesTls(urlWith('127.0.0.1', trusted)), /127\.0\.0\.1/, 'the pool checks an IP address too')
  await t.rejects(jobQueueUsesTls(urlWith('127.0.0.1', trusted)), /127\.0\.0\.1/)
  const chainOnly = `sslmode=verify-ca&sslrootcert=${encodeURIComponent(certFile)}`
  t.equal(await poolUsesTls(urlWith('127.0.0.1', chainOnly)), true, 'verify-ca checks the chain only')
  t.equal(await jobQueueUsesTls(urlWith('127.0.0.1', chainOnly)), true)
})

t.test('verify-full without the root refuses a certificate no known CA signed', async (t) => {
  const url = urlWith('localhost', 'sslmode=verify-full')
  await t.rejects(poolUsesTls(url), /certificate/)
  const error = await jobQueueUsesTls(url).catch((error: unknown) => error)
  // A worker stopping on it points at DATABASE_URL, not at itself.
  const line = startFailure({ url, embedded: false, release: async () => {} }, error, 'the worker')
  t.match(line, /^cannot use the database at DATABASE_URL: the server's certificate is not trusted \(self-signed certificate.*\): name its root certificate in DATABASE_URL with sslrootcert=<file>, or use sslmode=require/)
})

t.test("libpq's client-only parameters never reach the server as settings", async (t) => {
  const url = urlWith('127.0.0.1', 'sslmode=require&channel_binding=prefer&uselibpqcompat=true')
  t.equal(await poolUsesTls(url), true)
  t.equal(await jobQueueUsesTls(url), true)
  const sql = createPool(urlWith('127.0.0.1', 'sslmode=disable&options=-c%20search_path%3Dpg_catalog'), { max: 1 })
  t.teardown(() => sql.end())
  const [row] = await sql<{ ssl: boolean; path: string }[]>`
    select ssl, current_setting('search_path') as path from pg_stat_ssl where pid = pg_backend_pid()`
  t.same(row, { ssl: false, path: 'pg_catalog' }, 'sslmode=disable is plain text, and other parameters still reach the server')
})
