// The migration runner: forward-only, checksummed, safe to run twice at once.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { migrate, readMigrations, SQL_DIR } from '../../src/db/migrate.ts'
import { emptyDatabase, startClearOfMidnight, testPool } from '../helper.ts'

const options = { retentionDays: 3, aheadDays: 2 }

t.test('two runners at once apply every migration exactly once', async (t) => {
  await startClearOfMidnight()
  const url = await emptyDatabase(t)
  const [a, b] = [testPool(t, url, 2), testPool(t, url, 2)]
  const [appliedA, appliedB] = await Promise.all([migrate(a, options), migrate(b, options)])
  const all = readMigrations().map((m) => m.name)
  t.same([...appliedA, ...appliedB].sort(), all, 'between them, each file was applied once')
  const rows = await a<{ name: string }[]>`select name from schema_migrations order by id`
  t.same(rows.map((r) => r.name), all)
  t.same(await migrate(a, options), [], 'a third run has nothing to do')
  const [partitions] = await a<{ n: number }[]>`
    select count(*)::int as n from pg_inherits where inhparent = 'progress_events'::regclass`
  t.equal(partitions?.n, 3 + 1 + 2, 'partitions from RETENTION_DAYS back to PARTITIONS_AHEAD_DAYS ahead')
})

t.test('an already-applied file that was edited stops the runner with a clear error', async (t) => {
  const url = await emptyDatabase(t)
  const sql = testPool(t, url, 1)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'migrations-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const file of fs.readdirSync(SQL_DIR)) fs.copyFileSync(path.join(SQL_DIR, file), path.join(dir, file))
  await migrate(sql, { ...options, dir })
  fs.appendFileSync(path.join(dir, '000001_schema.sql'), '\n-- an innocent-looking edit\n')
  await t.rejects(migrate(sql, { ...options, dir }), { name: 'MigrationError' })
  await t.rejects(migrate(sql, { ...options, dir }), /000001_schema\.sql was changed after it was applied/)
})

t.test('a failing migration leaves nothing of itself behind', async (t) => {
  const url = await emptyDatabase(t)
  const sql = testPool(t, url, 1)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'migrations-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(path.join(dir, '000001_ok.sql'), 'create table first_table (id int);')
  fs.writeFileSync(path.join(dir, '000002_broken.sql'), 'create table half_done (id int);\nselect * from no_such_table;')
  await t.rejects(migrate(sql, { retentionDays: 1, aheadDays: 1, dir }), /no_such_table/)
  const [state] = await sql<{ half: string | null; first: string | null; applied: number }[]>`
    select to_regclass('half_done')::text as half, to_regclass('first_table')::text as first,
           (select count(*)::int from schema_migrations) as applied`
  t.equal(state?.half, null, 'the broken file rolled back as a whole')
  t.equal(state?.first, 'first_table')
  t.equal(state?.applied, 1)
})
