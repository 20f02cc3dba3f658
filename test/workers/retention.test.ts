import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { Sql } from '../../src/db/pool.ts'
import { restoreSnapshot } from '../../src/workers/restore.ts'
import { runRetention } from '../../src/workers/retention.ts'
import { readManifest, verifyFile, writeSnapshot } from '../../src/workers/snapshot.ts'
import { seedOrg, startClearOfMidnight, testDatabase, testPool } from '../helper.ts'
import { ingestAnalytics, ingestProgress, jobContext, scratchDir, workerConfig } from './support.ts'

const DAY = 86400000
const dayString = (daysAgo: number) => new Date(Math.floor(Date.now() / DAY) * DAY - daysAgo * DAY).toISOString().slice(0, 10)

/** A database with events (and a dead letter) on a day 40 days back, past RETENTION_DAYS=30. */
async function withOldDay(t: Test, daysAgo = 40) {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const day = dayString(daysAgo)
  const compact = day.replaceAll('-', '')
  await sql`select ensure_day_partition('progress_events', ${day}::date), ensure_day_partition('analytics_events', ${day}::date)`
  await seedOrg(sql, 'org-a', [{ courseId: 'c1', lessonCount: 2 }], ['alice', 'bob'])
  const at = (minute: number) => `${day}T10:${String(minute).padStart(2, '0')}:00.000Z`
  t.equal(await ingestProgress(sql, [
    { event_id: randomUUID(), occurred_at: at(1), user_id: 'alice', course_id: 'c1', lesson_id: 'l1', type: 'lesson_started', time_spent_ms: 10 },
    { event_id: randomUUID(), occurred_at: at(2), user_id: 'bob', course_id: 'c1', lesson_id: 'l1', type: 'lesson_completed', time_spent_ms: 20 },
    { event_id: randomUUID(), occurred_at: at(3), user_id: 'ghost', course_id: 'c1', lesson_id: 'l1', type: 'lesson_started' },
  ]), 'aaq')
  await ingestAnalytics(sql, [
    // Text that COPY must escape: tabs, newlines, backslashes, quotes, unicode.
    { event_id: randomUUID(), occurred_at: at(4), user_id: 'alice', name: 'note.saved', course_id: 'c1' },
  ])
  await sql`update analytics_events set properties = ${sql.json({ text: 'tab\there\nnew line \\ "quoted" é' })}
            where user_id = 'alice'`
  return { url, sql, day, progress: `progress_events_p${compact}`, analytics: `analytics_events_p${compact}` }
}

async function rowsOf(sql: Sql, table: string): Promise<string[]> {
  const rows = await sql.unsafe<{ row: string }[]>(`select to_jsonb(t)::text as row from ${table} t order by event_id`)
  return rows.map((r) => r.row)
}

const exists = async (sql: Sql, table: string) => (await sql<{ ok: boolean }[]>`select to_regclass(${table}) is not null as ok`)[0]!.ok

t.test('old partitions are snapshotted, verified, then dropped; re-runs are idempotent; restore round-trips', async (t) => {
  await startClearOfMidnight()
  const { url, sql, day, progress, analytics } = await withOldDay(t)
  const dir = scratchDir(t)
  const context = jobContext(sql, workerConfig(url, { SNAPSHOT_DIR: dir, RETENTION_DAYS: '30' }))
  const progressRows = await rowsOf(sql, progress)
  const analyticsRows = await rowsOf(sql, analytics)
  const deadLetters = await rowsOf(sql, 'dead_letter_events')
  t.equal(progressRows.length, 2)
  t.equal(deadLetters.length, 1)

  const runDay = (daysAgo: number) => new Date(Date.now() - daysAgo * 86400000)
  await sql`insert into worker_runs (job, started_at, finished_at) values ('rollup', ${runDay(31)}, ${runDay(31)}), ('rollup', ${runDay(29)}, ${runDay(29)})`

  const summary = await runRetention(context)
  t.equal(summary.before, dayString(30))
  t.equal(summary.workerRunsPruned, 1, 'the job run recorded before the window goes')
  t.equal((await sql`select 1 from worker_runs where finished_at < ${runDay(30)}`).length, 0)
  t.equal((await sql`select 1 from worker_runs where finished_at between ${runDay(29.5)} and ${runDay(28.5)}`).length, 1, 'the one within it stays')
  t.same(summary.dropped.map((d) => [path.basename(d.snapshot), d.rows]).sort(), [
    [`analytics_events_${day.replaceAll('-', '')}.manifest.json`, 1],
    [`progress_events_${day.replaceAll('-', '')}.manifest.json`, 2],
  ])
  t.same(summary.deadLetters.map((d) => d.rows), [1])
  t.same(summary.deferred, [])
  t.notOk(await exists(sql, progress), 'progress partition dropped')
  t.notOk(await exists(sql, analytics), 'analytics partition dropped')
  t.same(await rowsOf(sql, 'dead_letter_events'), [], 'the old dead letter left with its day')
  const [rolled] = await sql`select * from org_rollups where org_id = 'org-a' and granularity = 'day' and bucket = ${day}::date::timestamp at time zone 'UTC' and course_id = ''`
  t.match(rolled, { active_learners: 2, progress_events: 2, analytics_events: 1 }, 'rolled up before it was dropped')

  const progressSnapshot = summary.dropped.find((d) => d.snapshot.includes('progress_events'))!.snapshot
  const { manifest, dataPath } = readManifest(progressSnapshot)
  t.match(manifest, { table: 'progress_events', source: progress, day, rows: 2, format: 'postgresql-copy-text+gzip' })
  t.match(manifest.sha256, /^[0-9a-f]{64}$/)
  await t.resolves(verifyFile(dataPath, manifest.sha256, 2))
  await t.rejects(verifyFile(dataPath, manifest.sha256, 3), /holds 2 rows/)

  const again = await runRetention(context)
  t.same([again.dropped, again.deadLetters, again.deferred], [[], [], []], 'a second run has nothing to do')
  t.equal(fs.readdirSync(path.join(dir, 'progress_events')).length, 2, 'and writes no second snapshot')

  // Restore: into the original table (its partition is recreated), twice.
  const restored = await restoreSnapshot(sql, progressSnapshot)
  t.match(restored, { table: 'progress_events', rows: 2, inserted: 2, erased: 0, present: 0 })
  t.same(await rowsOf(sql, progress), progressRows, 'progress rows identical after the round trip')
  t.match(await restoreSnapshot(sql, dataPath), { inserted: 0, present: 2 }, 'restoring again changes nothing')
  const analyticsSnapshot = summary.dropped.find((d) => d.snapshot.includes('analytics_events'))!.snapshot
  await restoreSnapshot(sql, analyticsSnapshot)
  t.same(await rowsOf(sql, analytics), analyticsRows, 'analytics rows (escaped text and JSON) identical')
  await restoreSnapshot(sql, summary.deadLetters[0]!.snapshot)
  t.same(await rowsOf(sql, 'dead_letter_events'), deadLetters, 'dead letters identical')

  // Into another table with the same columns.
  await sql`create table progress_copy (like progress_events)`
  t.match(await restoreSnapshot(sql, progressSnapshot, { into: 'progress_copy' }), { inserted: 2 })
  t.same(await rowsOf(sql, 'progress_copy'), progressRows)

  // A corrupted file is refused before anything is loaded.
  fs.appendFileSync(dataPath, 'x')
  await t.rejects(restoreSnapshot(sql, progressSnapshot, { into: 'progress_copy' }), /SHA-256/)
})

t.test('a snapshot of thousands of rows leaves its connection usable: the transaction commits', async (t) => {
  // postgres.js left the socket paused when a COPY ended while paused (about
  // one partition in two of 5,000 to 30,000 rows): the COMMIT never answered.
  const sql = testPool(t, await testDatabase(t))
  const dir = scratchDir(t)
  // A stored table, so that the server sends faster than the snapshot writes.
  await sql`create table series as select g as id, md5(g::text) as hash, now() as at from generate_series(1, 40000) g`
  for (const rows of [3000, 5000, 8000, 12000, 20000, 40000]) {
    const committed = sql.begin('isolation level repeatable read', async (tx) => {
      const { manifest } = await writeSnapshot(tx, {
        dir, table: 'series', source: `series_${rows}`, day: dayString(40), columns: ['id', 'hash', 'at'], expectedRows: rows,
        select: `select * from series where id <= ${rows}`,
      })
      await tx`select 1`
      return manifest.rows
    })
    const outcome = await Promise.race([committed, new Promise((resolve) => setTimeout(resolve, 15000, 'no answer in 15 s'))])
    t.equal(outcome, rows, `${rows} rows`)
    if (outcome !== rows) break
  }
})

t.test('a snapshot whose file cannot be written (a full disk) fails, and its transaction ends', async (t) => {
  // The pipeline destroyed postgres.js's COPY stream part-way, which left the
  // connection paused: retention hung inside its transaction, lock held, and
  // ignored SIGTERM (a full or read-only SNAPSHOT_DIR).
  const sql = testPool(t, await testDatabase(t))
  const dir = scratchDir(t)
  await sql`create table series as select g as id, md5(g::text) as hash, now() as at from generate_series(1, 100000) g`
  const day = dayString(40)
  // The snapshot's temporary file, made a link to a device that is always full.
  fs.mkdirSync(path.join(dir, 'series'))
  fs.symlinkSync('/dev/full', path.join(dir, 'series', `.series_${day.replaceAll('-', '')}.copy.gz.${process.pid}.tmp`))
  const transaction = sql.begin('isolation level repeatable read', async (tx) => {
    await writeSnapshot(tx, {
      dir, table: 'series', source: 'series', day, columns: ['id', 'hash', 'at'], expectedRows: 100000, select: 'select * from series',
    })
  })
  const outcome = await Promise.race([
    transaction.then(() => 'committed', (error: Error) => error.message),
    new Promise((resolve) => setTimeout(resolve, 15000, 'no answer in 15 s')),
  ])
  t.match(outcome, /ENOSPC/, 'the write error, and the transaction rolled back')
  t.equal((await sql`select 1 as one`)[0]!.one, 1, 'the pool still answers')
  t.same(fs.readdirSync(path.join(dir, 'series')), [], 'no temporary file left behind')
})

t.test('a failed snapshot drops nothing, and the next run finishes the job', async (t) => {
  const { url, sql, progress } = await withOldDay(t)
  const dir = scratchDir(t)
  const context = jobContext(sql, workerConfig(url, { SNAPSHOT_DIR: dir, RETENTION_DAYS: '30' }))
  const before = await rowsOf(sql, progress)
  // The progress snapshot directory cannot be created: a file is in its place.
  fs.writeFileSync(path.join(dir, 'progress_events'), 'in the way')
  await t.rejects(runRetention(context), /EEXIST|ENOTDIR|exists/)
  t.ok(await exists(sql, progress), 'the partition is still there')
  t.same(await rowsOf(sql, progress), before, 'with every row')
  t.same(fs.readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temporary file left behind')

  fs.rmSync(path.join(dir, 'progress_events'))
  // What a retention killed mid-write leaves (its finally never ran).
  fs.mkdirSync(path.join(dir, 'progress_events'))
  const killed = path.join(dir, 'progress_events', '.progress_events_20261028.copy.gz.27474.tmp')
  fs.writeFileSync(killed, 'half a snapshot')
  const summary = await runRetention(context)
  t.ok(summary.dropped.some((d) => d.partition === progress && d.rows === 2), 'the next run snapshots and drops it')
  t.notOk(await exists(sql, progress))
  t.notOk(fs.existsSync(killed), "and removes the killed run's temporary file")
})

t.test('a partition whose rows the rollups cannot read yet is kept', async (t) => {
  const { url, sql } = await withOldDay(t)
  const context = jobContext(sql, workerConfig(url, { SNAPSHOT_DIR: scratchDir(t), RETENTION_DAYS: '30' }))
  // An older transaction still running holds the rollup's high-water mark below
  // rows written after it started.
  const open = await sql.reserve()
  t.teardown(() => open.release())
  await open`begin`
  await open`select pg_current_xact_id()`
  const day = dayString(41)
  await sql`select ensure_day_partition('progress_events', ${day}::date)`
  await ingestProgress(sql, [{ event_id: randomUUID(), occurred_at: `${day}T05:00:00Z`, user_id: 'alice', course_id: 'c1', lesson_id: 'l1', type: 'lesson_started' }])
  const summary = await runRetention(context)
  const late = `progress_events_p${day.replaceAll('-', '')}`
  t.match(summary.deferred, [{ partition: late, reason: /rollups/ }])
  t.ok(await exists(sql, late), 'kept')
  await open`commit`
  const next = await runRetention(context)
  t.ok(next.dropped.some((d) => d.partition === late), 'dropped once the rollups have it')
})

t.test('restore skips learners erased since the snapshot', async (t) => {
  const { url, sql } = await withOldDay(t)
  const context = jobContext(sql, workerConfig(url, { SNAPSHOT_DIR: scratchDir(t), RETENTION_DAYS: '30' }))
  const summary = await runRetention(context)
  await sql`select erase_learner('org-a', 'alice')`
  const progressSnapshot = summary.dropped.find((d) => d.snapshot.includes('progress_events'))!.snapshot
  t.match(await restoreSnapshot(sql, progressSnapshot), { rows: 2, inserted: 1, erased: 1 })
  t.same((await sql`select distinct user_id from progress_events`).map((r) => r.user_id), ['bob'])
})
