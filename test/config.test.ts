// Configuration: one schema, defaults, and one clear line naming a bad variable.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { Type } from 'typebox'
import { ConfigSchema, loadConfig, refreshLimit } from '../src/config.ts'

t.test('defaults match the contract', async (t) => {
  const config = loadConfig({})
  t.match(config, {
    HOST: '127.0.0.1', PORT: 3000, MAX_BATCH_EVENTS: 100, MAX_BATCH_BYTES: 262144, RATE_LIMIT_BATCHES_PER_SECOND: 5,
    LAG_SLO_MS: 250, RETENTION_DAYS: 30, PARTITIONS_AHEAD_DAYS: 7, MAX_FUTURE_MS: 86400000, STALE_AFTER_MS: 21600000,
    DAILY_BATCH_CRON: '0 2 * * *', embedded: true,
  })
  t.ok(config.SNAPSHOT_DIR.endsWith('/.data/snapshots'))
  t.same(refreshLimit(config), { max: 5, windowMs: 600000 })
})

t.test('bad values name the variable', async (t) => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ PORT: 'abc' }, /^Invalid configuration: PORT /],
    [{ MAX_BATCH_EVENTS: '0' }, /MAX_BATCH_EVENTS/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [{ DATABASE_URL: 'postgres://db/x' }, /AUTH_JWT_SECRET is required/],
    [{ AUTH_JWT_SECRET: 'short' }, /AUTH_JWT_SECRET/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/],
    // A pattern is said in words, not quoted as a regular expression.
    [{ REFRESH_LIMIT: 'lots' }, /^Invalid configuration: REFRESH_LIMIT must be "N per M minutes", such as "5 per 10 minutes"/],
    [{ REFRESH_LIMIT: '5/10m' }, /REFRESH_LIMIT must be "N per M minutes"/],
    [{ CORS_ORIGINS: 'foo' }, /^Invalid configuration: CORS_ORIGINS must be \* or comma-separated origins/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ URL/],
  ]
  for (const [env, message] of bad) {
    t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
  }
  t.equal(loadConfig({ DATABASE_URL: 'postgres://db/x', AUTH_JWT_SECRET: 'x'.repeat(32) }).embedded, false)
  // Processes that never check or mint a token (migrate, seed:demo, job scripts, the worker) run without the secret.
  t.equal(loadConfig({ DATABASE_URL: 'postgres://db/x' }, { tokens: false }).embedded, false)
})

/** The line loadConfig refuses env with, or undefined when it accepts it. */
function refusal(env: Record<string, string>): string | undefined {
  try {
    loadConfig(env)
    return undefined
  } catch (error) {
    return (error as Error).message
  }
}

t.test('integers are plain decimal digits, never coerced', async (t) => {
  const integers = Object.entries(ConfigSchema.properties).filter(([, schema]) => Type.IsInteger(schema)).map(([name]) => name)
  t.same(integers, [
    'PORT', 'METRICS_PORT', 'MAX_BATCH_EVENTS', 'MAX_BATCH_BYTES', 'RATE_LIMIT_BATCHES_PER_SECOND', 'LAG_SLO_MS', 'RETENTION_DAYS',
    'PARTITIONS_AHEAD_DAYS', 'MAX_FUTURE_MS', 'STALE_AFTER_MS', 'DB_POOL_MAX',
  ], 'every integer variable of the schema')
  for (const name of integers) {
    for (const value of ['1.5', '80.9', 'true', 'false', '0x10', '1e3', ' 50', '50 ', '+5', '-1', '99999999999999999999']) {
      t.match(refusal({ [name]: value }), new RegExp(`^Invalid configuration: ${name} must be a whole number from \\d+ to \\d+ \\(got `), `${name}=${JSON.stringify(value)}`)
    }
  }
  t.equal(refusal({ PORT: '80.9' }), 'Invalid configuration: PORT must be a whole number from 0 to 65535 (got "80.9")')
  t.equal(refusal({ METRICS_PORT: '0' }), 'Invalid configuration: METRICS_PORT must be a whole number from 1 to 65535 (got "0")')
  t.equal(loadConfig({}).METRICS_PORT, undefined, 'unset: /metrics stays on PORT')
  t.match(loadConfig({ PORT: '0', MAX_BATCH_EVENTS: '0050', LAG_SLO_MS: '600000' }), { PORT: 0, MAX_BATCH_EVENTS: 50, LAG_SLO_MS: 600000 }, 'digits, leading zeros too')
  t.match(refusal({ LAG_SLO_MS: '600001' }), /LAG_SLO_MS must be a whole number from 1 to 600000/, 'the bounds are in the line')
  // Booleans keep what they accepted: true/false and 1/0, in any case.
  for (const [value, expected] of [['true', true], ['FALSE', false], ['1', true], ['0', false]] as const) {
    t.equal(loadConfig({ GROUP_COMMIT: value }).GROUP_COMMIT, expected, `GROUP_COMMIT=${value}`)
  }
  t.match(refusal({ GROUP_COMMIT: 'yes' }), /^Invalid configuration: GROUP_COMMIT /)
})

t.test('MAX_FUTURE_MS stays a day inside the partitions made ahead', async (t) => {
  // An event admitted without a partition for its day failed its whole batch with a 500.
  t.equal(
    refusal({ MAX_FUTURE_MS: String(20 * 86400000) }),
    'Invalid configuration: MAX_FUTURE_MS (1728000000) must be at least a day less than PARTITIONS_AHEAD_DAYS (7 days): later events would have no partition',
  )
  t.match(refusal({ PARTITIONS_AHEAD_DAYS: '1' }), /^Invalid configuration: MAX_FUTURE_MS \(86400000\) must be at least a day less than PARTITIONS_AHEAD_DAYS \(1 day\)/)
  t.equal(loadConfig({ MAX_FUTURE_MS: String(6 * 86400000) }).MAX_FUTURE_MS, 6 * 86400000, 'six days of seven')
  t.equal(loadConfig({ PARTITIONS_AHEAD_DAYS: '2' }).PARTITIONS_AHEAD_DAYS, 2)
})

t.test('REFRESH_LIMIT is bounded to what the database and job_requests can hold', async (t) => {
  for (const value of ['99999999999 per 10 minutes', '5 per 99999999999 minutes', '0 per 10 minutes', '5 per 0 minutes', '1000001 per 1 minute', '1 per 10081 minutes']) {
    t.match(refusal({ REFRESH_LIMIT: value }), /^Invalid configuration: REFRESH_LIMIT must be "N per M minutes" with N from 1 to 1000000 and M from 1 to 10080/, value)
  }
  t.same(refreshLimit(loadConfig({ REFRESH_LIMIT: '1000000 per 10080 minutes' })), { max: 1000000, windowMs: 604800000 })
  t.same(refreshLimit(loadConfig({ REFRESH_LIMIT: '1 per 1 minute' })), { max: 1, windowMs: 60000 })
})

t.test('DAILY_BATCH_CRON is parsed as pg-boss will, five fields only', async (t) => {
  t.match(refusal({ DAILY_BATCH_CRON: 'a b c d e' }), /^Invalid configuration: DAILY_BATCH_CRON is not a cron schedule: [^\n]*a/)
  t.match(refusal({ DAILY_BATCH_CRON: '99 99 * * *' }), /^Invalid configuration: DAILY_BATCH_CRON is not a cron schedule: [^\n]*99/)
  // Six fields would be read seconds-first, hourly.
  t.match(refusal({ DAILY_BATCH_CRON: '0 2 * * * *' }), /^Invalid configuration: DAILY_BATCH_CRON must have five fields/)
  t.match(refusal({ DAILY_BATCH_CRON: '0 2 * *' }), /DAILY_BATCH_CRON must have five fields/)
  t.equal(loadConfig({ DAILY_BATCH_CRON: '*/15 3 * * MON-FRI' }).DAILY_BATCH_CRON, '*/15 3 * * MON-FRI')
})

t.test('URLs must parse, and one that may hold a password is not echoed', async (t) => {
  const secret = { AUTH_JWT_SECRET: 'x'.repeat(32) }
  t.match(refusal({ AUTH_JWKS_URL: 'http://' }), /^Invalid configuration: AUTH_JWKS_URL is not a URL that parses/)
  t.match(refusal({ REDIS_URL: 'redis://:' }), /^Invalid configuration: REDIS_URL is not a URL that parses/)
  const database = refusal({ ...secret, DATABASE_URL: 'postgres://app:hunter2@127.0.0.1:99999/x' })
  t.match(database, /^Invalid configuration: DATABASE_URL is not a URL that parses/)
  t.notMatch(database, /hunter2/, 'the password stays out of the line')
  t.notMatch(refusal({ AUTH_JWT_SECRET: 'short-secret' }), /short-secret/, 'so does a short secret')
  t.match(refusal({ DATABASE_URL: 'mysql://x' }), /^Invalid configuration: DATABASE_URL /, 'the scheme is still checked')
  t.equal(loadConfig({ ...secret, DATABASE_URL: 'postgresql://u:p%40ss@db.example:5432/app?sslmode=require', REDIS_URL: 'rediss://:pw@cache:6380/0' }).embedded, false)
})

t.test("DATABASE_URL's TLS parameters are read at start (test/db/tls.test.ts connects with them)", async (t) => {
  const url = (query: string) => ({ AUTH_JWT_SECRET: 'x'.repeat(32), DATABASE_URL: `postgres://app:hunter2@db.example/app?${query}` })
  t.match(refusal(url('sslmode=verify_full')), /^Invalid configuration: DATABASE_URL has sslmode=verify_full: use one of disable, allow, prefer, require, verify-ca, verify-full$/)
  // Neon's connection strings ask for it; neither driver can do it, and ignoring it would drop what it protects.
  t.match(refusal(url('sslmode=require&channel_binding=require')), /DATABASE_URL asks for channel_binding=require, .* use sslmode=verify-full/)
  const unreadable = refusal(url('sslmode=verify-full&sslrootcert=/no/such/root.crt'))
  t.match(unreadable, /^Invalid configuration: DATABASE_URL names sslrootcert=\/no\/such\/root.crt, which cannot be read \(ENOENT\)$/)
  t.notMatch(unreadable, /hunter2/)
  for (const query of ['sslmode=require', 'sslmode=prefer&channel_binding=prefer', 'sslmode=disable&uselibpqcompat=true', 'sslrootcert=system']) {
    t.equal(loadConfig(url(query)).embedded, false, query)
  }
})

t.test('HOST is an IP address or a host name', async (t) => {
  for (const value of [' ', '999.1.1.1', 'not a host!', 'http://example.com', '[::1]']) {
    t.match(refusal({ HOST: value }), /^Invalid configuration: HOST must be an IP address or a host name/, JSON.stringify(value))
  }
  // Whether a name resolves is only known at listen (test/main.test.ts).
  for (const value of ['0.0.0.0', '::', '::1', 'localhost', 'fly-local-6pn', 'api.internal', 'no.such.host.invalid']) {
    t.equal(loadConfig({ HOST: value }).HOST, value)
  }
})

t.test('a process with bad configuration exits non-zero with one line', async (t) => {
  const entry = fileURLToPath(new URL('../src/bin/api.ts', import.meta.url))
  const result = spawnSync(process.execPath, [entry], { env: { ...process.env, PORT: 'not-a-port' }, encoding: 'utf8' })
  t.not(result.status, 0)
  t.equal(result.stderr.trim().split('\n').length, 1)
  t.match(result.stderr, /PORT/)

  // DATA_DIR holds the embedded database and the dev secret: one that cannot be made is a setting error too.
  const { DATABASE_URL: _embedded, ...env } = process.env
  const dataDir = spawnSync(process.execPath, [entry], { env: { ...env, DATA_DIR: '/dev/null/data' }, encoding: 'utf8' })
  t.equal(dataDir.status, 78)
  t.match(dataDir.stderr, /^Invalid configuration: DATA_DIR \(\/dev\/null\/data\) cannot be used: ENOTDIR[^\n]*\n$/, 'one line naming DATA_DIR')
})
