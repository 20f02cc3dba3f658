// A database that fails a process after its schema check (src/db/ready.ts)
// stops it the same way: one line naming the database and PostgreSQL's or the
// socket's reason, exit code 1, never a stack trace. Against real servers: a
// role's CONNECTION LIMIT reached by pg-boss's own connections, a role that may
// read but not write, and TLS asked of servers that do not speak it.
import { execFile, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { migrate } from '../../src/db/migrate.ts'
import { createPool } from '../../src/db/pool.ts'
import { TEST_SECRET, testDatabase } from '../helper.ts'
import { scratchDir } from '../workers/support.ts'

const root = path.resolve(import.meta.dirname, '../..')
const adminUrl = () => process.env.TEST_ADMIN_URL!

/** Runs an entry point with only the given configuration; resolves to its exit code and output. */
async function run(t: Test, entry: string, databaseUrl: string) {
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    DATABASE_URL: databaseUrl,
    AUTH_JWT_SECRET: TEST_SECRET,
    DATA_DIR: scratchDir(t, 'start-failures-'),
    LOG_LEVEL: 'warn',
    PORT: '0',
  }
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [path.join(root, entry)], { env, timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

/** Runs SQL as the test server's superuser. */
async function asAdmin(statements: string[], url = adminUrl()): Promise<void> {
  const admin = createPool(url, { max: 1 })
  try {
    for (const statement of statements) await admin.unsafe(statement)
  } finally {
    await admin.end()
  }
}

/** A login role (not a superuser), dropped after the test with what it owns; its URL on `database`. */
async function loginRole(t: Test, database: string, attributes = '') {
  const name = `start_${randomBytes(5).toString('hex')}`
  const password = randomBytes(12).toString('hex')
  await asAdmin([`create role ${name} login password '${password}' ${attributes}`])
  t.teardown(async () => {
    await asAdmin([`drop database if exists ${name} with (force)`])
    // Its grants go with the test's database, if that was dropped first.
    await asAdmin([`drop owned by ${name}`], database).catch(() => {})
    await asAdmin([`drop role ${name}`])
  })
  const url = new URL(database)
  url.username = name
  url.password = password
  return { name, url: url.toString() }
}

t.test("a role's CONNECTION LIMIT that pg-boss's connections exceed stops the worker with one line", async (t) => {
  // The operator's setup: the schema owned by the runtime role (it migrates), a managed
  // service's per-role limit. The schema check and the partition run share one connection;
  // pg-boss's pool is the second.
  const role = await loginRole(t, adminUrl())
  await asAdmin([`create database ${role.name} owner ${role.name}`])
  const url = new URL(role.url)
  url.pathname = `/${role.name}`
  const sql = createPool(url.toString(), { max: 1 })
  await migrate(sql, { retentionDays: 30, aheadDays: 7 })
  await sql.end()
  await asAdmin([`alter role ${role.name} connection limit 1`])

  const result = await run(t, 'src/workers/main.ts', url.toString())
  t.equal(result.code, 1, 'exits 1')
  t.equal(result.stderr, `cannot use the database at DATABASE_URL: too many connections for role "${role.name}"\n`, 'one line, no stack trace')
})

t.test('a role that may not write stops the worker at its start-up partition run with one line', async (t) => {
  // It passes the schema check (it may read schema_migrations), then the partition run,
  // which creates partitions and records itself in worker_runs, is refused.
  const database = await testDatabase(t)
  const role = await loginRole(t, database)
  await asAdmin([`grant select on schema_migrations to ${role.name}`], database)

  const result = await run(t, 'src/workers/main.ts', role.url)
  t.equal(result.code, 1, 'exits 1')
  t.match(result.stderr, /^cannot use the database at DATABASE_URL: (permission denied|must be owner)[^\n]*\n$/, 'one line, no stack trace')
})

t.test('a database that refuses the connection the API opens while it builds stops it with the same line', async (t) => {
  // src/bin/api.ts checks the schema first; a refusal after that (here every connection of
  // the role) comes from building the app, which LISTENs for the analytics cache.
  const role = await loginRole(t, adminUrl(), 'connection limit 0')
  const moduleUrl = (file: string) => JSON.stringify(new URL(file, import.meta.url).href)
  const script = `
    import { startApiOrExit } from ${moduleUrl('../../src/api/server.ts')}
    import { loadConfig } from ${moduleUrl('../../src/config.ts')}
    const url = ${JSON.stringify(role.url)}
    const config = loadConfig({ DATABASE_URL: url, AUTH_JWT_SECRET: ${JSON.stringify(TEST_SECRET)}, PORT: '0', LOG_LEVEL: 'warn' })
    await startApiOrExit(config, { url, embedded: false, release: async () => console.log('released') })`
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60000 })
  t.equal(result.status, 1, 'exits 1')
  t.equal(result.stderr, `cannot use the database at DATABASE_URL: too many connections for role "${role.name}"\n`, 'one line, as the schema check would say it')
  t.equal(result.stdout, 'released\n', 'the database was released')
})

const NO_TLS =
  'cannot use the database at DATABASE_URL: the server does not accept TLS connections, but DATABASE_URL asks for them: remove sslmode from DATABASE_URL (or set sslmode=disable), or enable ssl on the server\n'

/**
 * A server that declines TLS as a pooler such as PgBouncer does without it:
 * "N" to the SSL request, then a protocol error in plain text for what
 * follows (postgres.js goes on with a TLS handshake regardless).
 */
async function plainTextServer(t: Test): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.once('data', () => {
      socket.write('N')
      socket.once('data', () => {
        const fields = Buffer.from('SFATAL\0C08P01\0Mbad packet header\0\0')
        const header = Buffer.alloc(5)
        header.write('E')
        header.writeInt32BE(fields.length + 4, 1)
        socket.end(Buffer.concat([header, fields]))
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as net.AddressInfo).port
}

t.test('sslmode=require against a server without TLS: one readable line naming the setting', async (t) => {
  const targets: [string, string][] = [[`postgres://app@127.0.0.1:${await plainTextServer(t)}/app?sslmode=require`, 'a pooler without TLS']]
  const database = await testDatabase(t)
  const probe = createPool(database, { max: 1 })
  const [{ ssl } = { ssl: 'on' }] = await probe<{ ssl: string }[]>`show ssl`
  await probe.end()
  // PostgreSQL itself closes the socket at the handshake; the embedded test server has no TLS.
  if (ssl === 'off') targets.push([`${database}?sslmode=require`, 'PostgreSQL without TLS'])
  else t.comment('the test server has TLS: only the pooler case runs')
  for (const [url, server] of targets) {
    for (const entry of ['src/workers/main.ts', 'src/bin/api.ts']) {
      const result = await run(t, entry, url)
      t.equal(result.code, 1, `${server}, ${entry}: exits 1`)
      t.equal(result.stderr, NO_TLS, `${server}, ${entry}: one line saying what to change`)
    }
  }
})
