// Order independence: one learner's event history, delivered in any order, split
// into any batches (sent concurrently), with duplicates and late arrivals, must
// converge to exactly the same lesson and course rows as delivering it once in order.
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import type { ProgressRow } from '../../src/ingest/validate.ts'
import { directWriter } from '../../src/ingest/writer.ts'
import { testDatabase, testPool } from '../helper.ts'

interface HistoryEvent {
  lesson: number
  type: ProgressRow['type']
  progress: number
  timeSpentMs: number
  score: number | null
  minutesAgo: number
}

const historyEvent = fc.record<HistoryEvent>({
  lesson: fc.integer({ min: 1, max: 3 }),
  type: fc.constantFrom('lesson_started', 'lesson_progress', 'lesson_completed'),
  progress: fc.integer({ min: 0, max: 100 }),
  timeSpentMs: fc.integer({ min: 0, max: 5000 }),
  score: fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }),
  minutesAgo: fc.integer({ min: 0, max: 10 * 24 * 60 }),
})

const delivery = fc.record({
  history: fc.array(historyEvent, { minLength: 1, maxLength: 25 }),
  order: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 25, maxLength: 25 }),
  duplicates: fc.array(fc.nat({ max: 24 }), { maxLength: 10 }),
  batches: fc.integer({ min: 1, max: 6 }),
})

const LESSON_COLUMNS = 'course_id, lesson_id, status, progress_pct, best_score, time_spent_ms, first_event_at, last_event_at, completed_at, event_count'
const COURSE_COLUMNS = 'course_id, lessons_started, lessons_completed, time_spent_ms, started_at, last_activity_at, last_lesson_completed_at'

t.test('any order, split, duplication and lateness converges to the same progress rows', async (t) => {
  const sql = testPool(t, await testDatabase(t), 8)
  const writer = directWriter(sql)
  await sql`insert into courses (org_id, course_id, lesson_count) values ('org-p', 'course-1', 3)`
  const now = Date.now()
  let run = 0

  await fc.assert(
    fc.asyncProperty(delivery, async ({ history, order, duplicates, batches }) => {
      run++
      const users = { reference: `ref-${run}`, shuffled: `shuf-${run}` }
      await sql`insert into assignments (org_id, user_id, course_id)
                values ('org-p', ${users.reference}, 'course-1'), ('org-p', ${users.shuffled}, 'course-1')`
      const rowsFor = (userId: string) =>
        history.map(
          (event): ProgressRow => ({
            i: 0,
            event_id: randomUUID(),
            occurred_at: new Date(now - event.minutesAgo * 60000).toISOString(),
            user_id: userId,
            org_hint: null,
            clock_skew_ms: null,
            course_id: 'course-1',
            lesson_id: `lesson-${event.lesson}`,
            type: event.type,
            progress: event.type === 'lesson_progress' ? event.progress : null,
            time_spent_ms: event.timeSpentMs,
            score: event.score,
          }),
        )
      const reference = rowsFor(users.reference).map((row, i) => ({ ...row, i }))
      await writer.write('progress', reference)

      // The same events for the other learner: shuffled, some sent twice, split into batches sent at once.
      const base = rowsFor(users.shuffled)
      const sent = [...base, ...duplicates.filter((d) => d < base.length).map((d) => base[d]!)]
      const shuffled = sent.map((row, k) => ({ row, key: order[k % order.length]! + k * 1e-9 })).sort((a, b) => a.key - b.key).map((x) => x.row)
      const size = Math.ceil(shuffled.length / batches)
      const chunks = Array.from({ length: batches }, (_, b) => shuffled.slice(b * size, (b + 1) * size)).filter((c) => c.length > 0)
      const outcomes = await Promise.all(chunks.map((chunk) => writer.write('progress', chunk.map((row, i) => ({ ...row, i })))))
      const accepted = outcomes.join('').split('').filter((o) => o === 'a').length
      if (accepted !== base.length) throw new Error(`accepted ${accepted} of ${base.length} distinct events`)

      const lessons = (userId: string) =>
        sql.unsafe(`select ${LESSON_COLUMNS} from user_lesson_progress where user_id = $1 order by lesson_id`, [userId])
      const courses = (userId: string) => sql.unsafe(`select ${COURSE_COLUMNS} from user_course_progress where user_id = $1`, [userId])
      const [refLessons, shufLessons, refCourses, shufCourses] = await Promise.all([
        lessons(users.reference), lessons(users.shuffled), courses(users.reference), courses(users.shuffled),
      ])
      if (JSON.stringify(refLessons) !== JSON.stringify(shufLessons)) {
        throw new Error(`lesson rows differ:\n${JSON.stringify(refLessons)}\n${JSON.stringify(shufLessons)}`)
      }
      if (JSON.stringify(refCourses) !== JSON.stringify(shufCourses) || refCourses.length !== 1) {
        throw new Error(`course rows differ:\n${JSON.stringify(refCourses)}\n${JSON.stringify(shufCourses)}`)
      }
    }),
    { numRuns: 60 },
  )
  t.equal(run >= 60, true, `${run} random deliveries converged`)

  // And the merge rules themselves, on one fixed history.
  const [check] = await sql<{ n: number }[]>`
    select count(*)::int as n from user_lesson_progress
    where status = 'completed' and (completed_at is null or progress_pct <> 100)`
  t.equal(check?.n, 0, 'a completed lesson is at 100 % with a completion time')
})
