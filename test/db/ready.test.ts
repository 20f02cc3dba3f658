// A process started against a DATABASE_URL database it cannot use stops with
// one line saying what to do (src/db/ready.ts), rather than a stack trace or
// a 500 on every request; once `npm run migrate` has run, the same start goes on.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { emptyDatabase, TEST_SECRET } from '../helper.ts'
import { readMigrations } from '../../src/db/migrate.ts'

const root = path.resolve(import.meta.dirname, '../..')

/** Runs an entry point with only the given configuration (no secret unless passed). */
async function run(entry: string, env: Record<string, string>, args: string[] = []) {
  const clean = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'warn', PORT: '0', ...env }
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [path.join(root, entry), ...args], { env: clean, timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

t.test('an unmigrated database stops the API, the worker and the job scripts with one line', async (t) => {
  const url = await emptyDatabase(t)
  const migrations = readMigrations()
  const expected = `the database at DATABASE_URL lacks ${migrations.length} migration(s) this code needs (from sql/${migrations[0]!.name}): run npm run migrate against it first\n`
  for (const [entry, env] of [
    ['src/bin/api.ts', { DATABASE_URL: url, AUTH_JWT_SECRET: TEST_SECRET }],
    ['src/workers/main.ts', { DATABASE_URL: url }],
    ['scripts/rollup.ts', { DATABASE_URL: url }],
  ] as const) {
    const result = await run(entry, env)
    t.equal(result.code, 1, `${entry} exits 1`)
    t.equal(result.stderr, expected, `${entry} says why, in one line`)
  }

  // The release step needs no token secret; after it the job script runs.
  const migrate = await run('scripts/migrate.ts', { DATABASE_URL: url })
  t.equal(migrate.code, 0, migrate.stderr)
  t.match(migrate.stdout, `applied ${migrations.length} migration(s)`)
  const partitions = await run('scripts/partitions.ts', { DATABASE_URL: url })
  t.equal(partitions.code, 0, partitions.stderr)
  t.notMatch(partitions.stderr, /lacks/)
})

t.test('an unreachable database stops a process with one line, not a stack trace', async (t) => {
  const env = { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere', AUTH_JWT_SECRET: TEST_SECRET }
  // npm start and seed:demo migrate whatever database they are given; the others only check it.
  for (const entry of ['src/main.ts', 'src/bin/api.ts', 'src/workers/main.ts', 'scripts/seed-demo.ts', 'scripts/rollup.ts']) {
    const result = await run(entry, env)
    t.equal(result.code, 1, `${entry} exits 1`)
    t.match(result.stderr, /^cannot use the database at DATABASE_URL: .*ECONNREFUSED[^\n]*\n$/, `${entry}: one line`)
  }
})
