import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { recomputeUserRole } from '../../src/analytics/compute.ts'
import { build, seedOrg } from '../helper.ts'
import { eventually, ingestAnalytics, ingestProgress, jobContext, recomputedRollups, rollUpCommitted, rollupTables, scratchDir, spawnWorker, workerConfig } from './support.ts'

const HOUR = 3600000
const at = (hoursAgo: number) => new Date(Math.floor(Date.now() / HOUR) * HOUR - hoursAgo * HOUR + 60000).toISOString()

async function seed(h: Awaited<ReturnType<typeof build>>) {
  await seedOrg(h.sql, 'org-a', [{ courseId: 'c1', lessonCount: 2 }, { courseId: 'c2', lessonCount: 2 }], ['alice', 'bob'])
  await seedOrg(h.sql, 'org-b', [{ courseId: 'c1', lessonCount: 2 }], ['alice'])
  for (const [user, org] of [['alice', 'org-a'], ['bob', 'org-a'], ['alice', 'org-b']] as const) {
    for (const hoursAgo of [2, 30, 75]) {
      await ingestProgress(h.sql, [
        { event_id: randomUUID(), occurred_at: at(hoursAgo), user_id: user, course_id: 'c1', lesson_id: 'l1', type: 'lesson_started', time_spent_ms: 100, org_hint: org },
        { event_id: randomUUID(), occurred_at: at(hoursAgo - 1), user_id: user, course_id: 'c1', lesson_id: 'l1', type: 'lesson_completed', time_spent_ms: 50, org_hint: org },
      ])
      await ingestAnalytics(h.sql, [{ event_id: randomUUID(), occurred_at: at(hoursAgo), user_id: user, name: 'page.view', org_hint: org }])
    }
  }
  // A deferred event of alice's (no assignment for c9 yet), and a learner-data table of
  // the kind later migrations add: erasure finds it by its user_id column.
  t.equal(await ingestProgress(h.sql, [{ event_id: randomUUID(), occurred_at: at(3), user_id: 'alice', course_id: 'c9', lesson_id: 'l1', type: 'lesson_started', org_hint: 'org-a' }]), 'q')
  await h.sql`create table learner_notes (org_id text not null, user_id text not null, note text)`
  await h.sql`insert into learner_notes values ('org-a', 'alice', 'a'), ('org-a', 'bob', 'b'), ('org-b', 'alice', 'c')`
}

type Reserved = Awaited<ReturnType<Awaited<ReturnType<typeof build>>['sql']['reserve']>>

/**
 * Runs `work` in a transaction left open, starts erasing `userId` of org-a,
 * then commits: did the erasure wait for that commit?
 */
async function erasureWaitsFor(t: Test, h: Awaited<ReturnType<typeof build>>, work: (tx: Reserved) => Promise<unknown>, userId: string): Promise<boolean> {
  const tx = await h.sql.reserve()
  t.teardown(() => tx.release())
  await tx`begin`
  await work(tx)
  let erased = false
  const erasure = h.sql`select erase_learner('org-a', ${userId})`.then(() => (erased = true))
  await sleep(300)
  const waited = !erased
  await tx`commit`
  await erasure
  return waited
}

const count = async (h: Awaited<ReturnType<typeof build>>, table: string, org: string, user: string) =>
  (await h.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table} where org_id = $1 and user_id = $2`, [org, user]))[0]!.n

t.test('DELETE /api/v1/orgs/:orgId/users/:userId erases the learner through a worker', async (t) => {
  const h = await build(t)
  await seed(h)
  await rollUpCommitted(jobContext(h.sql, workerConfig(h.url)))
  // One more event after the rollup: stored but not yet rolled up.
  await ingestProgress(h.sql, [{ event_id: randomUUID(), occurred_at: at(1), user_id: 'alice', course_id: 'c2', lesson_id: 'l7', type: 'lesson_started', org_hint: 'org-a' }])
  const orgBBefore = await rollupTables(h.sql, 'org-b')
  const bobEvents = await count(h, 'progress_events', 'org-a', 'bob')

  const send = async (token: string, url = '/api/v1/orgs/org-a/users/alice') =>
    h.app.inject({ method: 'DELETE', url, headers: { authorization: `Bearer ${token}` } })
  for (const [who, options] of [
    ['instructor', { orgId: 'org-a', role: 'instructor' as const }],
    ['learner', { orgId: 'org-a' }],
    ['other org admin', { orgId: 'org-b', role: 'admin' as const }],
  ] as const) {
    const res = await send(await h.token('x', options))
    t.equal(res.statusCode, 403, who)
    t.equal(res.json().code, 'FORBIDDEN')
  }
  const admin = await h.token('ada', { orgId: 'org-a', role: 'admin' })

  const res = await send(admin)
  t.equal(res.statusCode, 202, res.body)
  const { jobId } = res.json()
  t.match(jobId, /^[0-9a-f-]{36}$/)
  t.match(await h.app.jobs.get('erase-learner', jobId), { state: 'created', data: { orgId: 'org-a', userId: 'alice', requestedBy: { userId: 'ada' } } })
  const follow = async (token: string) =>
    h.app.inject({ method: 'GET', url: `/api/v1/jobs/${jobId}`, headers: { authorization: `Bearer ${token}` } })
  t.match((await follow(admin)).json(), { state: 'created', startedAt: null }, 'the requester follows the job')
  t.equal((await follow(await h.token('other', { orgId: 'org-a', role: 'admin' }))).statusCode, 404, 'nobody else sees it')

  const worker = spawnWorker(t, h.url, { SNAPSHOT_DIR: scratchDir(t) })
  const done = await eventually(async () => {
    const status = await h.app.jobs.get('erase-learner', jobId)
    return status?.state === 'completed' ? status : undefined
  }, 60_000, 'the erasure job')
  worker.child.kill('SIGTERM')
  t.match((await follow(admin)).json(), { state: 'completed' })
  t.match(done.output, { orgId: 'org-a', rowsRemoved: { progress_events: 7, analytics_events: 3, dead_letter_events: 1, learner_notes: 1 } })
  t.notOk('userId' in (done.output ?? {}), 'the run names no user: worker_runs keeps it')
  // pg-boss keeps finished jobs, data included, for its queue's deletion
  // window, and deletes a job still waiting for a worker after its retention.
  const windows = await h.sql<{ name: string; deletion_seconds: number }[]>`
    select name, deletion_seconds from pgboss.queue where name in ('erase-learner', 'analytics-recompute') order by name`
  t.same(windows.map((queue) => [queue.name, queue.deletion_seconds]), [['analytics-recompute', 86400], ['erase-learner', 86400]],
    'jobs whose data names the learner are deleted a day after they end, not after pg-boss\'s week')
  const [queued] = await h.sql<{ years: number }[]>`
    select extract(epoch from keep_until - created_on) / (365 * 86400) as years from pgboss.job where id = ${jobId}`
  t.ok(queued!.years >= 1, `a queued erasure is not deleted unrun after pg-boss's 14 days: it could wait ${queued!.years} years`)

  for (const table of ['progress_events', 'analytics_events', 'user_lesson_progress', 'user_course_progress', 'learner_notes', 'org_rollup_learners', 'assignments']) {
    t.equal(await count(h, table, 'org-a', 'alice'), 0, `nothing of alice in ${table}`)
  }
  const [deadLetters] = await h.sql<{ n: number }[]>`select count(*)::int as n from dead_letter_events where user_id = 'alice'`
  t.equal(deadLetters!.n, 0, 'nor among dead letters')
  t.equal(await count(h, 'progress_events', 'org-a', 'bob'), bobEvents, "bob's events are untouched")
  t.equal(await count(h, 'learner_notes', 'org-a', 'bob'), 1)
  t.equal(await count(h, 'progress_events', 'org-b', 'alice'), 6, 'alice in another org is another tenant’s learner: kept')
  t.ok(await count(h, 'assignments', 'org-b', 'alice'), 'and so is her enrolment there')
  t.ok(await count(h, 'assignments', 'org-a', 'bob'), "bob's enrolment is untouched")
  t.same(await rollupTables(h.sql, 'org-a'), await recomputedRollups(h.sql, 'org-a'), "org-a's rollups are what bob's events alone give")
  t.same(await rollupTables(h.sql, 'org-b'), orgBBefore, "org-b's rollups are unchanged")

  const [receipt] = await h.sql`select * from erasure_receipts where org_id = 'org-a' and user_id = 'alice'`
  t.match(receipt, { requested_by: 'ada', job_id: jobId, rows_removed: { progress_events: 7, user_lesson_progress: 2, user_course_progress: 2, assignments: 2 } })
  t.ok(receipt!.erased_at instanceof Date)
})

t.test('on days retention already dropped, only the learner’s share of active learners and lessons goes', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'c1', lessonCount: 1 }], ['alice', 'bob'])
  // A bucket 60 days back: its raw events are gone, its rollup and its sets of learners and lessons remain.
  const bucket = new Date(Math.floor(Date.now() / 86400000) * 86400000 - 60 * 86400000)
  await h.sql`insert into org_rollups (org_id, granularity, bucket, course_id, active_learners, progress_events, lessons_completed)
              values ('org-a', 'day', ${bucket}, '', 2, 9, 2), ('org-a', 'day', ${bucket}, 'c1', 2, 9, 2)`
  await h.sql`insert into org_rollup_learners (org_id, granularity, bucket, course_id, user_id)
              select 'org-a', 'day', ${bucket}, c, u from unnest(array['', 'c1']) c, unnest(array['alice', 'bob']) u`
  await h.sql`insert into org_rollup_lessons (org_id, granularity, bucket, course_id, user_id, lesson_course_id, lesson_id, completed)
              select 'org-a', 'day', ${bucket}, c, u, 'c1', 'l1', true from unnest(array['', 'c1']) c, unnest(array['alice', 'bob']) u`
  const [removed] = await h.sql`select erase_learner('org-a', 'alice') as removed`
  t.match(removed!.removed, { org_rollup_learners: 2, org_rollup_lessons: 2, rollup_buckets_adjusted: 0 })
  t.same((await h.sql`select course_id, active_learners, progress_events, lessons_completed from org_rollups order by course_id`).map((r) => ({ ...r })), [
    { course_id: '', active_learners: 1, progress_events: 9, lessons_completed: 1 },
    { course_id: 'c1', active_learners: 1, progress_events: 9, lessons_completed: 1 },
  ], 'the anonymous event count stays')
  t.same((await h.sql`select distinct user_id from org_rollup_learners`).map((r) => r.user_id), ['bob'])
  const [again] = await h.sql`select erase_learner('org-a', 'alice') as removed`
  t.match(again!.removed, { progress_events: 0, org_rollup_learners: 0 }, 'a repeated erasure finds nothing')
  const [receipts] = await h.sql<{ n: number }[]>`select count(*)::int as n from erasure_receipts`
  t.equal(receipts!.n, 2, 'and leaves its own receipt')
})

t.test('erasure takes only the learner’s share out of the rollups, whichever partitions a day still has', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'c1', lessonCount: 2 }], ['alice', 'bob'])
  // Day D (two days back): both learners in one hour. Retention then drops D's
  // analytics partition but not its progress one (one table's snapshot
  // restored, or its partition deferred). Alice also has an hour to herself.
  const day = new Date(Math.floor(Date.now() / 86400000) * 86400000 - 2 * 86400000)
  const atHour = (hour: number) => new Date(day.getTime() + hour * HOUR + 60000).toISOString()
  for (const [user, plays] of [['alice', 1], ['bob', 2]] as const) {
    await ingestProgress(h.sql, [{ event_id: randomUUID(), occurred_at: atHour(9), user_id: user, course_id: 'c1', lesson_id: 'l1', type: 'lesson_completed', time_spent_ms: 100, org_hint: 'org-a' }])
    await ingestAnalytics(h.sql, Array.from({ length: plays }, () => ({ event_id: randomUUID(), occurred_at: atHour(9), user_id: user, course_id: 'c1', name: 'video.play', org_hint: 'org-a' })))
  }
  await ingestProgress(h.sql, [{ event_id: randomUUID(), occurred_at: atHour(15), user_id: 'alice', course_id: 'c1', lesson_id: 'l2', type: 'lesson_started', time_spent_ms: 7, org_hint: 'org-a' }])
  await ingestAnalytics(h.sql, [{ event_id: randomUUID(), occurred_at: at(2), user_id: 'alice', name: 'quiz.answer', org_hint: 'org-a' }])
  await rollUpCommitted(jobContext(h.sql, workerConfig(h.url)))
  const partition = `analytics_events_p${day.toISOString().slice(0, 10).replaceAll('-', '')}`
  await h.sql.unsafe(`alter table analytics_events detach partition ${partition}`)
  await h.sql.unsafe(`drop table ${partition}`)

  const [removed] = await h.sql`select erase_learner('org-a', 'alice') as removed`
  t.match(removed!.removed, { progress_events: 2, analytics_events: 1, org_rollup_learners: 8, org_rollup_lessons: 8 })
  const buckets = await h.sql`
    select granularity, to_char(bucket at time zone 'UTC', 'HH24') as hour, course_id, active_learners, progress_events,
           lessons_started, lessons_completed, time_spent_ms, analytics_events
    from org_rollups where org_id = 'org-a' order by 1, 2, 3`
  const bobsDay = { active_learners: 1, progress_events: 1, lessons_started: 0, lessons_completed: 1, time_spent_ms: '100' }
  // Alice's play cannot be taken out (its raw row is gone: an anonymous count
  // that stays, docs/workers.md); bob's two must not be lost with it.
  t.same(buckets.map((r) => ({ ...r })), [
    { granularity: 'day', hour: '00', course_id: '', ...bobsDay, analytics_events: 3 },
    { granularity: 'day', hour: '00', course_id: 'c1', ...bobsDay, analytics_events: 3 },
    { granularity: 'hour', hour: '09', course_id: '', ...bobsDay, analytics_events: 3 },
    { granularity: 'hour', hour: '09', course_id: 'c1', ...bobsDay, analytics_events: 3 },
  ], 'bob’s figures are whole, and the buckets only alice filled are gone')
  const names = await h.sql`select count(*)::int as n, min(events)::int as events from org_rollup_event_names where org_id = 'org-a'`
  t.same({ ...names[0] }, { n: 4, events: 3 })
})

t.test('what was computed from the learner, or logged with their id, goes with them', async (t) => {
  const h = await build(t)
  await seed(h)
  const stored = async () =>
    (await h.sql`select org_id, user_id, role from learner_analytics order by 1, 2, 3`).map((row) => `${row.org_id}/${row.user_id}/${row.role}`)
  // ivan teaches c1, which alice took; olga teaches c3, which she did not.
  await seedOrg(h.sql, 'org-a', [{ courseId: 'c3', lessonCount: 1 }], ['bob'])
  await h.sql`insert into assignments (org_id, user_id, course_id, role) values ('org-a', 'ivan', 'c1', 'instructor'), ('org-a', 'olga', 'c3', 'instructor'), ('org-b', 'ivan', 'c1', 'instructor')`
  for (const [orgId, userId, role] of [
    ['org-a', 'bob', 'learner'],
    ['org-a', 'ivan', 'instructor'],
    ['org-a', 'olga', 'instructor'],
    ['org-a', 'ada', 'admin'],
    ['org-b', 'ivan', 'instructor'],
  ] as const) {
    await recomputeUserRole(h.sql, { orgId, userId, role })
  }
  const summaries = [{ orgId: 'org-a', userId: 'alice', role: 'learner' }, { orgId: 'org-b', userId: 'alice', role: 'learner' }, { orgId: 'org-a', userId: 'bob', role: 'learner' }]
  for (const summary of summaries) await h.sql`insert into worker_runs (job, started_at, summary) values ('analytics-recompute', now(), ${h.sql.json(summary)})`

  await h.sql`insert into cohort_runs (org_id, computed_at, k, learners) values ('org-a', now(), 1, 2), ('org-b', now(), 1, 1)`

  const [erased] = await h.sql`select erase_learner('org-a', 'alice') as removed`
  t.match(erased!.removed, { org_aggregate_analytics: 3, worker_runs: 1 })
  t.same((await h.sql`select org_id from cohort_runs`).map((row) => row.org_id), ['org-b'], "org-a's cohorts are discovered again on their next read")
  t.same(
    await stored(),
    ['org-a/bob/learner', 'org-a/olga/instructor', 'org-b/ivan/instructor'],
    "org-a's admin figures and the figures of alice's instructors are recomputed on their next read; another learner's own, an instructor of other courses and another org's stay",
  )
  const runs = await h.sql`select summary from worker_runs where job = 'analytics-recompute' order by id`
  t.same(runs.map((row) => row.summary), summaries.slice(1), "the runs that named alice in org-a are gone")
  const [receipt] = await h.sql`select rows_removed from erasure_receipts where org_id = 'org-a' and user_id = 'alice'`
  t.match(receipt!.rows_removed, { org_aggregate_analytics: 3, worker_runs: 1, progress_events: 6 }, 'the receipt counts them')
})

t.test('an erasure waits for a cohort discovery in progress, so the discovery cannot store the learner again', async (t) => {
  const h = await build(t)
  await seed(h)
  // alice's traits staged, not committed
  t.ok(await erasureWaitsFor(t, h, (discovery) => discovery`select stage_cohort_traits('org-a', now())`, 'alice'), 'the erasure waits')
  t.equal(await count(h, 'cohort_members', 'org-a', 'alice'), 0, "then removes what the discovery stored of alice's")
  t.ok(await count(h, 'cohort_members', 'org-a', 'bob'), "and keeps bob's")
})

t.test('an erased learner’s analytics leave every API cache, and a recompute running meanwhile does not store them again', async (t) => {
  const h = await build(t)
  await seed(h)
  await recomputeUserRole(h.sql, { orgId: 'org-a', userId: 'alice', role: 'learner' })
  const admin = await h.token('ada', { orgId: 'org-a', role: 'admin' })
  const read = async () =>
    (await h.app.inject({ method: 'GET', url: '/api/v1/analytics/learner/alice?role=learner', headers: { authorization: `Bearer ${admin}` } })).json()
  t.equal((await read()).status, 'fresh')
  t.equal((await read()).status, 'fresh', 'now cached')

  await h.sql`select erase_learner('org-a', 'alice')`
  t.match(await read(), { code: 'FORBIDDEN' }, 'her enrolment went too: she is no learner of the org')
  // Assigned again by the LMS at once: what her read answers is no longer the cached analytics.
  await h.sql`insert into assignments (org_id, user_id, course_id) values ('org-a', 'alice', 'c1')`
  let after = await read()
  for (let i = 0; i < 50 && after.status === 'fresh'; i++) {
    await sleep(100)
    after = await read()
  }
  t.match(after, { status: 'calculating', data: null }, 'the cached analytics are gone at once, not when the cache entry expires')

  // A recompute that has computed alice's analytics but not committed yet
  // (bob's stand in: the row is new, so no row lock makes the erasure wait).
  await h.sql`delete from learner_analytics where org_id = 'org-a' and user_id = 'bob'`
  const recompute = (tx: Reserved) => tx`select refresh_learner_analytics('org-a', 'learner', array['bob'], now())`
  t.ok(await erasureWaitsFor(t, h, recompute, 'bob'), 'the erasure waits for the running recompute')
  t.equal(await count(h, 'learner_analytics', 'org-a', 'bob'), 0, 'and then removes what it stored')
})

t.test('an erasure waiting for its org’s work holds up no other org’s batches', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'c1', lessonCount: 1 }], ['alice'])
  await seedOrg(h.sql, 'org-b', [{ courseId: 'c1', lessonCount: 1 }], ['bob'])
  // A made-up user of org-a whose write lock is bob's (64 keys for all orgs).
  const [found] = await h.sql<{ ghost: string }[]>`
    select 'ghost-' || n as ghost from generate_series(1, 10000) n
    where learner_write_lock('ghost-' || n) = learner_write_lock('bob') limit 1`
  const ghost = found!.ghost
  // Org-a's cohort discovery (or recompute, or rollup chunk) runs for a while.
  const discovery = await h.sql.reserve()
  t.teardown(() => discovery.release())
  await discovery`begin`
  await discovery`select pg_advisory_xact_lock(19531, hashtext('org-a'))`
  let erased = false
  const erasure = h.sql`select erase_learner('org-a', ${ghost})`.then(() => (erased = true))
  await sleep(200)
  const outcome = await Promise.race([
    ingestProgress(h.sql, [{ event_id: randomUUID(), occurred_at: at(1), user_id: 'bob', course_id: 'c1', lesson_id: 'l1', type: 'lesson_started', org_hint: 'org-b' }]),
    sleep(3000).then(() => 'still waiting'),
  ])
  t.equal(outcome, 'a', 'org-b’s batch is written while org-a’s erasure waits')
  t.notOk(erased, 'the erasure is still waiting for org-a')
  await discovery`commit`
  await erasure
  t.ok(erased)
})

t.test('a batch naming the learner commits before the erasure starts, or starts after it ends', async (t) => {
  const h = await build(t)
  await seed(h)
  const lessonOf = async (user: string) =>
    (await h.sql<{ status: string; time_spent_ms: number; event_count: number }[]>`
      select status, time_spent_ms, event_count from user_lesson_progress
      where org_id = 'org-a' and user_id = ${user} and course_id = 'c2' and lesson_id = 'l5'`)[0]
  const completed = (user: string) =>
    ({ event_id: randomUUID(), occurred_at: at(1), user_id: user, course_id: 'c2', lesson_id: 'l5', type: 'lesson_completed' as const, time_spent_ms: 5000, org_hint: 'org-a' })

  // A batch written, not yet committed: before, the erasure's delete of events
  // missed it and its later deletes took the progress built from it.
  const batch = (tx: Reserved) => ingestProgress(tx, [completed('alice')])
  t.ok(await erasureWaitsFor(t, h, batch, 'alice'), 'the erasure waits for the batch')
  t.equal(await count(h, 'progress_events', 'org-a', 'alice'), 0, "the batch's event is erased with the rest")
  t.equal(await lessonOf('alice'), undefined, 'and so is the progress built from it')

  // An erasure running, not yet committed: a batch for the learner waits, then builds on nothing.
  const erasure = await h.sql.reserve()
  t.teardown(() => erasure.release())
  await erasure`begin`
  await erasure`select erase_learner('org-a', 'bob')`
  // Enrolled again in the same transaction (the erasure took the enrolment too), so the batch is stored, not deferred.
  await erasure`insert into assignments (org_id, user_id, course_id) values ('org-a', 'bob', 'c2')`
  let written = false
  const write = ingestProgress(h.sql, [completed('bob')]).then((outcomes) => ((written = true), outcomes))
  await sleep(300)
  t.notOk(written, 'the batch waits for the erasure')
  await erasure`commit`
  t.equal(await write, 'a')
  t.equal(await count(h, 'progress_events', 'org-a', 'bob'), 1, 'only the new event is stored')
  t.same(await lessonOf('bob'), { status: 'completed', time_spent_ms: 5000, event_count: 1 }, 'and the progress is its fold')
})

t.test('a dead-letter replay and an erasure of one of its learners do not deadlock', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'c1', lessonCount: 1 }], [])
  // Two learners with deferred events, the first's write lock key below the second's.
  const [pair] = await h.sql<{ first: string; second: string }[]>`
    select a.u as first, b.u as second
    from (select 'dl-' || n as u from generate_series(1, 200) n) a, (select 'dl-' || n as u from generate_series(1, 200) n) b
    where learner_write_lock(a.u) < learner_write_lock(b.u) limit 1`
  const { first, second } = pair!
  for (const user of [first, second]) {
    t.equal(await ingestProgress(h.sql, [{ event_id: randomUUID(), occurred_at: at(1), user_id: user, course_id: 'c1', lesson_id: 'l1', type: 'lesson_started', org_hint: 'org-a' }]), 'q')
  }
  await h.sql`insert into assignments (org_id, user_id, course_id) values ('org-a', ${first}, 'c1'), ('org-a', ${second}, 'c1')`
  // Another erasure holds the first learner's key: before, the replay locked
  // both dead letters and then waited there for the learner locks, while the
  // erasure of the second took its lock and waited for the replay's row.
  const other = await h.sql.reserve()
  t.teardown(() => other.release())
  await other`begin`
  await other`select pg_advisory_xact_lock(learner_write_lock_class(), learner_write_lock(${first}))`
  const replay = h.sql`select * from replay_dead_letter(${[first, second]}::text[], 500, 30)`.then(
    (rows) => rows.map((row) => ({ ...row })),
    (error: Error) => error,
  )
  await sleep(200)
  const erasure = h.sql`select erase_learner('org-a', ${second}) as removed`.then(([row]) => row!.removed, (error: Error) => error)
  await sleep(300)
  await other`commit`
  const [replayed, erased] = await Promise.all([replay, erasure])
  t.notOk(replayed instanceof Error, `the replay commits: ${replayed instanceof Error ? replayed.message : 'ok'}`)
  t.notOk(erased instanceof Error, `the erasure commits: ${erased instanceof Error ? erased.message : 'ok'}`)
  t.equal(await count(h, 'progress_events', 'org-a', second), 0, 'nothing of the erased learner is stored')
  const [left] = await h.sql<{ n: number }[]>`select count(*)::int as n from dead_letter_events where user_id = ${second}`
  t.equal(left!.n, 0, 'nor left to replay')
})
