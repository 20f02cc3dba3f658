// A worker asked to stop while a job is stuck (on a lock): it waits its 30 s
// for the job, then says which job it cut off, records the run (the job's own
// record is lost with the pool), exits 0, and leaves the job to be retried.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { seedOrg, testDatabase, testPool } from '../helper.ts'
import { eventually, ingestProgress, workerWithHeldRollup } from './support.ts'

t.setTimeout(240_000)

t.test('a job stuck past the stop wait is said, recorded and left to be retried; the worker still exits 0', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  for (const org of ['org-1', 'org-2']) {
    await seedOrg(sql, org, [{ courseId: 'c1', lessonCount: 1 }], ['u1'])
    await ingestProgress(sql, [{ event_id: randomUUID(), occurred_at: new Date().toISOString(), user_id: 'u1', course_id: 'c1', lesson_id: 'l0', type: 'lesson_started', org_hint: org }])
  }
  // The rollup gets past org-1 and waits on org-2's row.
  const { worker, holder } = await workerWithHeldRollup(t, sql, url, 'org-2')
  await eventually(async () => {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and application_name = 'learning-events-worker' and wait_event_type = 'Lock'`
    return row!.n > 0 ? true : undefined
  }, 60_000, 'the rollup to wait on the held row')

  const stoppedAt = Date.now()
  worker.child.kill('SIGTERM')
  t.equal(await worker.exited, 0, 'exits 0')
  const seconds = (Date.now() - stoppedAt) / 1000
  t.ok(seconds >= 30 && seconds < 45, `waited the 30 s for the job, then its connections (${seconds.toFixed(1)} s; fly.toml's kill_timeout is 45 s)`)
  // Rollups run one at a time: the one stuck is the one sent, or a scheduled
  // occurrence that came first (the other then waits in the queue).
  const runs = await sql<{ summary: { jobId: string; error?: string } }[]>`select summary from worker_runs where job = 'rollup'`
  t.equal(runs.length, 1, 'one rollup run recorded')
  const cutOff = runs[0]!.summary.jobId
  t.equal(runs[0]!.summary.error, 'cut off: still running 30 s after the worker was asked to stop', 'saying it was cut off')
  t.match(worker.output(), new RegExp(`"job":"rollup","jobId":"${cutOff}".*job still running after the 30 s stop wait`), 'the cut-off job is said, by name and id')
  const [job] = await sql<{ state: string }[]>`select state from pgboss.job where name = 'rollup' and id = ${cutOff}`
  t.equal(job!.state, 'retry', 'the job is failed for the queue to retry')
  await holder`rollback`
})
