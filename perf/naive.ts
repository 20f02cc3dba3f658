// The approach the seeds started from, as a baseline: one statement per event
// from Node, each its own transaction. Per event: resolve the org from the
// assignment, INSERT ... ON CONFLICT DO NOTHING the event, and when it is new,
// upsert the lesson's progress row. (It does not even maintain the course
// aggregate, which the procedure does, so it is flattered.) Prints one JSON line.
//   node perf/naive.ts --url postgres://... [--callers 4] [--seconds 10] [--warmup 3] ...
import { createPool } from '../src/db/pool.ts'
import { closedLoop, driverArgs } from './closed-loop.ts'
import { DEMO_ORG, slot } from './lib/activity.js'
import { preparedProgressBatch } from './prepared-batch.ts'

const args = driverArgs(process.argv.slice(2))
const sql = createPool(args.url, { max: args.callers, applicationName: 'bench-naive' })

const STATUS = { lesson_started: 'started', lesson_progress: 'in_progress', lesson_completed: 'completed' } as const

try {
  const result = await closedLoop({
    ...args,
    async send(iteration) {
      const { learner, round } = slot(iteration, args.learners)
      const { rows } = preparedProgressBatch(learner, round, args.eventsPerBatch, args.courses)
      for (const row of rows) {
        const [assignment] = await sql<{ org_id: string }[]>`
          select org_id from assignments
          where user_id = ${row.user_id} and course_id = ${row.course_id} and org_id = ${DEMO_ORG}
          limit 1`
        if (!assignment) throw new Error(`no assignment for ${row.user_id} ${row.course_id}: seed the demo data`)
        const inserted = await sql`
          insert into progress_events (org_id, event_id, occurred_at, user_id, course_id, lesson_id,
                                       type, progress, time_spent_ms, score, clock_skew_ms)
          values (${assignment.org_id}, ${row.event_id}, ${row.occurred_at}, ${row.user_id}, ${row.course_id},
                  ${row.lesson_id}, ${row.type}, ${row.progress}, ${row.time_spent_ms ?? 0}, ${row.score}, ${row.clock_skew_ms})
          on conflict do nothing
          returning event_id`
        if (inserted.length === 0) continue
        const pct = row.type === 'lesson_completed' ? 100 : (row.progress ?? 0)
        await sql`
          insert into user_lesson_progress as l (org_id, user_id, course_id, lesson_id, status, progress_pct,
                                                 best_score, time_spent_ms, first_event_at, last_event_at,
                                                 completed_at, event_count)
          values (${assignment.org_id}, ${row.user_id}, ${row.course_id}, ${row.lesson_id}, ${STATUS[row.type]},
                  ${pct}, ${row.score}, ${row.time_spent_ms ?? 0}, ${row.occurred_at}, ${row.occurred_at},
                  ${row.type === 'lesson_completed' ? row.occurred_at : null}, 1)
          on conflict (org_id, user_id, course_id, lesson_id) do update set
            status         = greatest(l.status, excluded.status),
            progress_pct   = greatest(l.progress_pct, excluded.progress_pct),
            best_score     = greatest(l.best_score, excluded.best_score),
            time_spent_ms  = l.time_spent_ms + excluded.time_spent_ms,
            first_event_at = least(l.first_event_at, excluded.first_event_at),
            last_event_at  = greatest(l.last_event_at, excluded.last_event_at),
            completed_at   = least(l.completed_at, excluded.completed_at),
            event_count    = l.event_count + 1,
            updated_at     = now()`
      }
      return rows.length
    },
  })
  console.log(JSON.stringify({ driver: 'naive', ...result }))
} finally {
  await sql.end({ timeout: 5 })
}
