// The daily batch: every user-role, in chunks run in parallel, the same
// result as computing each alone; its job definitions.
import t from 'tap'
import { batchChunks, recomputeUserRole, runDailyBatch } from '../../src/analytics/compute.ts'
import { analyticsJobs, dailyBatchJob } from '../../src/analytics/jobs.ts'
import { ANALYTICS_QUEUES } from '../../src/analytics/types.ts'
import { loadConfig } from '../../src/config.ts'
import { testDatabase, testPool } from '../helper.ts'
import { NOW, seedMetricsFixture } from './fixtures.ts'

t.test('every user-role in chunks, as if computed one by one', async (t) => {
  const sql = testPool(t, await testDatabase(t), 6)
  await seedMetricsFixture(sql)
  // An admin exists only once they have asked (their row holds no data yet).
  await sql`insert into learner_analytics (org_id, user_id, role) values ('org-a', 'root', 'admin')`

  const chunks = await batchChunks(sql, 3)
  t.strictSame(
    chunks.map((chunk) => [chunk.role, chunk.userIds]),
    [['learner', ['alice', 'bob', 'dave']], ['learner', ['carol']], ['instructor', ['ivan']], ['admin', ['root']]],
    'learners first, in chunks of 3; then instructors; then each org\'s admins as one chunk',
  )

  const progress: number[] = []
  const summary = await runDailyBatch(sql, { now: new Date(NOW), chunkSize: 3, parallel: 2, onChunk: (done) => progress.push(done) })
  t.match(summary, { chunks: 4, userRoles: 6, stored: 6, failedChunks: 0 })
  t.strictSame(progress, [1, 2, 3, 4])
  const rows = await sql<{ user_id: string; role: string; computed_at: Date; data: object }[]>`
    select user_id, role, computed_at, data from learner_analytics order by role, user_id`
  t.strictSame(rows.map((row) => `${row.user_id}:${row.role}`), ['root:admin', 'ivan:instructor', 'alice:learner', 'bob:learner', 'carol:learner', 'dave:learner'])
  t.ok(rows.every((row) => row.computed_at.toISOString() === NOW))

  // The same figures as a one-user computation (the chunk shares peers, courses, org figures).
  const batched = new Map(rows.map((row) => [`${row.user_id}:${row.role}`, row.data]))
  await sql`delete from learner_analytics`
  for (const [userId, role] of [['alice', 'learner'], ['carol', 'learner'], ['ivan', 'instructor'], ['root', 'admin']] as const) {
    await recomputeUserRole(sql, { orgId: 'org-a', userId, role }, new Date(NOW))
    const [row] = await sql<{ data: object }[]>`select data from learner_analytics where user_id = ${userId} and role = ${role}`
    t.strictSame(row?.data, batched.get(`${userId}:${role}`), `${userId} as ${role}`)
  }
})

t.test('an aborted batch stops between chunks and fails, so the queue retries it', async (t) => {
  const sql = testPool(t, await testDatabase(t))
  await seedMetricsFixture(sql)
  const stop = new AbortController()
  await t.rejects(
    runDailyBatch(sql, { now: new Date(NOW), chunkSize: 1, parallel: 1, signal: stop.signal, onChunk: () => stop.abort() }),
    /stopped after 1 of 5 chunks/,
  )
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from learner_analytics`
  t.equal(row?.n, 1)
})

t.test('job definitions', async (t) => {
  const config = loadConfig({ DAILY_BATCH_CRON: '30 3 * * *' })
  t.equal(dailyBatchJob.cron?.(config), '30 3 * * *', 'the batch runs at DAILY_BATCH_CRON')
  t.strictSame(analyticsJobs.map((job) => job.name), [ANALYTICS_QUEUES.dailyBatch, ANALYTICS_QUEUES.recompute, ANALYTICS_QUEUES.cohorts])
  const recompute = analyticsJobs.find((job) => job.name === ANALYTICS_QUEUES.recompute)
  const context = { sql: undefined as never, config, log: undefined as never, signal: new AbortController().signal }
  await t.rejects(recompute!.handler({ orgId: 'org-a', userId: 'alice', role: 'owner' }, context), /must be \{ orgId, userId, role \}/)
})
