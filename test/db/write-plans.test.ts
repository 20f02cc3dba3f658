// The write procedures' plans must not depend on statistics (sql/000036): their
// generic plans are cached per connection, so one made while a table looked
// empty would scan the whole table on every call until autovacuum analyzes it.
// auto_explain, at NOTICE level, shows the plans of the statements nested in
// the procedures; this test reads them on a database whose statistics say the
// tables are empty while they hold thousands of rows.
import postgres from 'postgres'
import t from 'tap'
import type { ProgressRow } from '../../src/ingest/validate.ts'
import { directWriter } from '../../src/ingest/writer.ts'
import { progressRow, seedOrg, testDatabase, testPool } from '../helper.ts'

const LEARNERS = 400
const LESSONS = 10

function row(i: number, userId: string, lesson: number, type: ProgressRow['type']): ProgressRow {
  return progressRow({
    i,
    user_id: userId,
    lesson_id: `lesson-${lesson}`,
    type,
    progress: type === 'lesson_progress' ? 50 : null,
    score: type === 'lesson_completed' ? 80 : null,
  })
}

t.test('the procedures search by index even when statistics say the tables are empty', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url, 4)
  const tables = ['assignments', 'user_lesson_progress', 'user_course_progress', 'dead_letter_events']
  // Statistics that say "empty", frozen: analyzed before any row exists, and
  // autovacuum kept away so it cannot refresh them during the test.
  for (const table of tables) await sql.unsafe(`alter table ${table} set (autovacuum_enabled = off)`)
  await sql.unsafe(`analyze ${tables.join(', ')}`)

  const learners = Array.from({ length: LEARNERS }, (_, k) => `learner-${k + 1}`)
  await seedOrg(sql, 'org-1', [{ courseId: 'course-1', lessonCount: LESSONS }], learners)
  const writer = directWriter(sql)
  for (let learner = 1; learner <= LEARNERS; learner += 20) {
    const rows: ProgressRow[] = []
    for (let k = learner; k < learner + 20; k++) {
      for (let lesson = 1; lesson <= LESSONS; lesson++) rows.push(row(rows.length, `learner-${k}`, lesson, 'lesson_started'))
    }
    await writer.write('progress', rows)
  }
  const [lessons] = await sql<{ count: number }[]>`select count(*)::int as count from user_lesson_progress`
  t.equal(lessons!.count, LEARNERS * LESSONS, 'thousands of lesson rows exist')
  const [statistics] = await sql<{ reltuples: number }[]>`select reltuples from pg_class where relname = 'user_lesson_progress'`
  t.ok(statistics!.reltuples <= 0, 'while the statistics still say the table is empty')

  // A new connection plans afresh, as every connection of a new API process does.
  const plans: string[] = []
  const observed = postgres(url, { max: 1, onnotice: (notice) => plans.push(String(notice.message)) })
  t.teardown(() => observed.end({ timeout: 5 }))
  await observed`load 'auto_explain'`
  await observed`select set_config('auto_explain.log_min_duration', '0', false),
                        set_config('auto_explain.log_nested_statements', 'on', false),
                        set_config('auto_explain.log_level', 'notice', false)`
  const batch = [row(0, 'learner-7', 3, 'lesson_progress'), row(1, 'learner-7', 3, 'lesson_completed'), row(2, 'nobody', 1, 'lesson_started')]
  const payload = JSON.stringify(batch)
  const [call] = await observed<{ outcomes: string }[]>`select upsert_progress_batch(${payload}::text::json) as outcomes`
  t.equal(call!.outcomes, 'aaq', 'the call itself behaves as usual')

  const text = plans.join('\n')
  t.match(text, /user_lesson_progress/, 'the nested plans were captured')
  t.notMatch(text, /Seq Scan/, 'no sequential scan in any statement of the call')
  t.match(text, /Index (Only )?Scan using user_lesson_progress_pkey/, 'course progress reads the learner\'s lessons through the primary key')
})
