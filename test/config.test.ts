// Configuration: one schema, defaults, and one clear line naming a bad variable.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { loadConfig, refreshLimit } from '../src/config.ts'

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
    [{ REFRESH_LIMIT: 'lots' }, /REFRESH_LIMIT/],
  ]
  for (const [env, message] of bad) {
    t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
  }
  t.equal(loadConfig({ DATABASE_URL: 'postgres://db/x', AUTH_JWT_SECRET: 'x'.repeat(32) }).embedded, false)
  // Processes that never check or mint a token (migrate, seed:demo, job scripts, the worker) run without the secret.
  t.equal(loadConfig({ DATABASE_URL: 'postgres://db/x' }, { tokens: false }).embedded, false)
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
