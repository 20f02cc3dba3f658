import { randomUUID } from 'node:crypto'
import t from 'tap'
import { runJob } from '../../src/jobs/runner.ts'
import { replayJob, runReplay } from '../../src/workers/replay.ts'
import { seedOrg, testDatabase, testPool } from '../helper.ts'
import { ingestAnalytics, ingestProgress, jobContext, workerConfig } from './support.ts'

t.test('deferred events whose assignment now exists are ingested exactly once, even by concurrent replays', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url, 8)
  await seedOrg(sql, 'org-a', [{ courseId: 'c1', lessonCount: 4 }], ['alice'])
  const at = new Date(Date.now() - 3600000).toISOString()
  const events = Array.from({ length: 9 }, (_, i) => ({
    event_id: randomUUID(), occurred_at: at, user_id: 'bob', course_id: 'c1', lesson_id: `l${i % 3}`,
    type: 'lesson_progress' as const, time_spent_ms: 100 + i,
  }))
  t.equal(await ingestProgress(sql, events), 'q'.repeat(9))
  t.equal(await ingestProgress(sql, events.slice(0, 4)), 'dddd', 'a retried deferred batch is a duplicate')
  t.equal(await ingestAnalytics(sql, [{ event_id: randomUUID(), occurred_at: at, user_id: 'bob', name: 'page.view' }]), 'q')
  // Carol's deferred event has no assignment yet: it waits.
  t.equal(await ingestProgress(sql, [{ ...events[0]!, event_id: randomUUID(), user_id: 'carol' }]), 'q')

  await sql`insert into assignments (org_id, user_id, course_id) values ('org-a', 'bob', 'c1')`
  const context = jobContext(sql, workerConfig(url))
  const [first, second] = await Promise.all([runReplay(context, 2), runReplay(context, 3)])
  t.equal(first!.accepted + second!.accepted, 10, 'every deferred event accepted once across both replays')
  t.equal(first!.duplicates + second!.duplicates, 0)

  const [stored] = await sql<{ n: number }[]>`select count(*)::int as n from progress_events where user_id = 'bob'`
  t.equal(stored!.n, 9)
  const [time] = await sql<{ ms: number }[]>`select sum(time_spent_ms)::int as ms from user_lesson_progress where user_id = 'bob'`
  t.equal(time!.ms, events.reduce((sum, e) => sum + e.time_spent_ms, 0), 'time spent counted once per event')
  const left = await sql<{ user_id: string }[]>`select user_id from dead_letter_events`
  t.same(left.map((r) => r.user_id), ['carol'])

  // As the scheduled job: recorded in worker_runs, nothing left to replay.
  const result = await runJob(replayJob, {}, context)
  t.match(result, { replayed: 0, waiting: 1, complete: true })
  const [run] = await sql`select job, summary from worker_runs order by id desc limit 1`
  t.match(run, { job: 'replay-dead-letter', summary: { waiting: 1 } })
})
