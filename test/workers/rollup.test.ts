import { randomUUID } from 'node:crypto'
import t from 'tap'
import { runRollup } from '../../src/workers/rollup.ts'
import { build, seedOrg } from '../helper.ts'
import { ingestAnalytics, ingestProgress, jobContext, recomputedRollups, rollUpCommitted, rollupTables, workerConfig } from './support.ts'

const HOUR = 3600000
// Read once: a test that wrote events in one hour and read its buckets in the next would miss them.
const THIS_HOUR = new Date(Math.floor(Date.now() / HOUR) * HOUR)
/** An hour boundary well inside the retention window, as ISO text. */
function hourAgo(hours: number, plusMs = 0): string {
  return new Date(THIS_HOUR.getTime() - hours * HOUR + plusMs).toISOString()
}

t.test('a rollup run counts events per hour and day, per course and per org, exactly', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'c1', lessonCount: 3 }, { courseId: 'c2', lessonCount: 3 }], ['alice', 'bob'])
  const context = jobContext(h.sql, workerConfig(h.url))
  // Two events exactly on an hour boundary and one a millisecond before it.
  const boundary = hourAgo(5)
  await ingestProgress(h.sql, [
    { event_id: randomUUID(), occurred_at: boundary, user_id: 'alice', course_id: 'c1', lesson_id: 'l1', type: 'lesson_started', time_spent_ms: 100 },
    { event_id: randomUUID(), occurred_at: boundary, user_id: 'bob', course_id: 'c1', lesson_id: 'l1', type: 'lesson_completed', time_spent_ms: 250 },
    { event_id: randomUUID(), occurred_at: hourAgo(5, -1), user_id: 'alice', course_id: 'c2', lesson_id: 'l9', type: 'lesson_completed', time_spent_ms: 7 },
  ])
  await ingestAnalytics(h.sql, [
    { event_id: randomUUID(), occurred_at: hourAgo(5, 60000), user_id: 'alice', name: 'quiz.answer', course_id: 'c1' },
    { event_id: randomUUID(), occurred_at: hourAgo(5, 120000), user_id: 'alice', name: 'quiz.answer', course_id: 'c1' },
    { event_id: randomUUID(), occurred_at: hourAgo(5, 180000), user_id: 'bob', name: 'page.view' },
  ])

  const first = await rollUpCommitted(context)
  t.match(first, { orgs: 1, orgsDone: 1, events: 6, complete: true })
  const [hour] = await h.sql`
    select * from org_rollups where org_id = 'org-a' and granularity = 'hour' and bucket = ${boundary} and course_id = ''`
  t.match(hour, { active_learners: 2, progress_events: 2, lessons_started: 1, lessons_completed: 1, time_spent_ms: 350, analytics_events: 3 })
  const [course] = await h.sql`
    select * from org_rollups where org_id = 'org-a' and granularity = 'hour' and bucket = ${boundary} and course_id = 'c1'`
  t.match(course, { active_learners: 2, progress_events: 2, analytics_events: 2 }, 'the course-less page.view counts for the org only')
  const [before] = await h.sql`
    select * from org_rollups where org_id = 'org-a' and granularity = 'hour' and bucket = ${hourAgo(6)} and course_id = ''`
  t.match(before, { active_learners: 1, lessons_completed: 1, time_spent_ms: 7 }, 'a millisecond before the boundary is the previous hour')
  t.same(await rollupTables(h.sql), await recomputedRollups(h.sql))

  // Nothing new: the next run reads nothing.
  t.match(await rollUpCommitted(context), { orgs: 0, events: 0 })
  // A late event for an old day, and a retried (duplicate) batch.
  const late = { event_id: randomUUID(), occurred_at: hourAgo(24 * 9), user_id: 'bob', course_id: 'c2', lesson_id: 'l2', type: 'lesson_started' as const }
  t.equal(await ingestProgress(h.sql, [late]), 'a')
  t.equal(await ingestProgress(h.sql, [late]), 'd')
  t.match(await rollUpCommitted(context), { orgs: 1, events: 1 })
  t.same(await rollupTables(h.sql), await recomputedRollups(h.sql))
})

t.test('lessons count once per bucket, however many of their events it has and in however many runs', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'c1', lessonCount: 3 }, { courseId: 'c2', lessonCount: 3 }], ['alice', 'bob'])
  const context = jobContext(h.sql, workerConfig(h.url))
  const event = (user: string, course: string, lesson: string, type: 'lesson_started' | 'lesson_completed', minute: number) => ({
    event_id: randomUUID(), occurred_at: hourAgo(5, minute * 60000), user_id: user, course_id: course, lesson_id: lesson, type,
  })
  // alice completes l1 three times (a replayed video completes again) and l1 of c2 once; bob starts l1 twice.
  await ingestProgress(h.sql, [
    event('alice', 'c1', 'l1', 'lesson_completed', 1), event('alice', 'c1', 'l1', 'lesson_completed', 2),
    event('alice', 'c2', 'l1', 'lesson_completed', 3), event('bob', 'c1', 'l1', 'lesson_started', 4),
  ])
  await rollUpCommitted(context)
  await ingestProgress(h.sql, [event('alice', 'c1', 'l1', 'lesson_completed', 5), event('bob', 'c1', 'l1', 'lesson_started', 6)])
  await rollUpCommitted(context)
  const counts = await h.sql<{ course_id: string; lessons_started: number; lessons_completed: number }[]>`
    select course_id, lessons_started::int, lessons_completed::int from org_rollups
    where org_id = 'org-a' and granularity = 'hour' and bucket = ${hourAgo(5)} order by course_id`
  t.same(counts.map((row) => [row.course_id, row.lessons_started, row.lessons_completed]), [
    ['', 1, 2], // the org: alice's l1 of c1 and of c2 (lessons are per course), bob's l1
    ['c1', 1, 1],
    ['c2', 0, 1],
  ])
  t.same(await rollupTables(h.sql), await recomputedRollups(h.sql))
})

t.test('chunks end on transaction boundaries and a run stopped between chunks is finished by the next', async (t) => {
  const h = await build(t)
  const learners = ['u1', 'u2', 'u3']
  for (const org of ['org-a', 'org-b', 'org-c']) await seedOrg(h.sql, org, [{ courseId: 'c1', lessonCount: 1 }], learners)
  for (let batch = 0; batch < 6; batch++) {
    for (const org of ['org-a', 'org-b', 'org-c']) {
      await ingestProgress(h.sql, learners.map((user, i) => ({
        event_id: randomUUID(), occurred_at: hourAgo(batch * 7 + i), user_id: user, course_id: 'c1', lesson_id: `l${batch}`,
        type: 'lesson_progress' as const, time_spent_ms: batch * 10 + i, org_hint: org,
      })))
    }
  }
  const config = workerConfig(h.url)
  const stop = new AbortController()
  let calls = 0
  // Abort after the first org finished: the others stop between chunks.
  const stopped = await rollUpCommitted(jobContext(h.sql, config, { signal: stop.signal, progress: (done) => done >= 1 && stop.abort() }), { chunkEvents: 2, concurrency: 1 })
  t.equal(stopped.complete, false)
  t.ok(stopped.orgsDone >= 1 && stopped.orgsDone < 3, `stopped after ${stopped.orgsDone} org(s)`)
  const [mark] = await h.sql<{ low: string }[]>`select xid_low::text as low from rollup_state`
  t.equal(mark!.low, '0', 'the global mark does not move on an incomplete run')

  const rest = await rollUpCommitted(jobContext(h.sql, config, { progress: () => calls++ }), { chunkEvents: 2 })
  t.equal(rest.complete, true)
  t.equal(stopped.events + rest.events, 54, 'every event was read exactly once across both runs')
  t.ok(rest.chunks >= 9, `chunks of about 2 events (3-event batches are whole): ${rest.chunks}`)
  t.same(await rollupTables(h.sql), await recomputedRollups(h.sql))
})

t.test('a second run while one holds the lock is skipped', async (t) => {
  const h = await build(t)
  const config = workerConfig(h.url)
  const holder = await h.sql.reserve()
  t.teardown(() => holder.release())
  await holder`select pg_advisory_lock(19526, 1)`
  t.match(await runRollup(jobContext(h.sql, config)), { skipped: /in progress/ })
  await holder`select pg_advisory_unlock(19526, 1)`
  t.notOk((await runRollup(jobContext(h.sql, config))).skipped)
})

t.test('GET /api/v1/orgs/:orgId/rollups', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'c1', lessonCount: 2 }], ['alice', 'bob'])
  await ingestProgress(h.sql, [
    { event_id: randomUUID(), occurred_at: hourAgo(3), user_id: 'alice', course_id: 'c1', lesson_id: 'l1', type: 'lesson_completed', time_spent_ms: 500 },
    { event_id: randomUUID(), occurred_at: hourAgo(2), user_id: 'bob', course_id: 'c1', lesson_id: 'l1', type: 'lesson_started' },
  ])
  await ingestAnalytics(h.sql, [{ event_id: randomUUID(), occurred_at: hourAgo(3, 5), user_id: 'alice', name: 'page.view', course_id: 'c1' }])
  await rollUpCommitted(jobContext(h.sql, workerConfig(h.url)))
  const admin = await h.token('ada', { orgId: 'org-a', role: 'admin' })
  const get = async (query: string, token = admin, org = 'org-a') =>
    h.app.inject({ method: 'GET', url: `/api/v1/orgs/${org}/rollups${query}`, headers: { authorization: `Bearer ${token}` } })

  const hourly = await get(`?granularity=hour&from=${hourAgo(4)}&to=${hourAgo(-1)}`)
  t.equal(hourly.statusCode, 200, hourly.body)
  const body = hourly.json()
  t.equal(body.buckets.length, 2)
  t.match(body.buckets[0], {
    bucket: hourAgo(3), activeLearners: 1, lessonsCompleted: 1, timeSpentMs: 500, analyticsEvents: 1,
    eventCounts: { 'page.view': 1 }, courses: [{ courseId: 'c1', activeLearners: 1, eventCounts: { 'page.view': 1 } }],
  })
  t.match(body.buckets[1], { bucket: hourAgo(2), activeLearners: 1, lessonsStarted: 1 })

  // `to` is exclusive: a range ending at the second bucket's start holds only the first.
  const exclusive = await get(`?from=${hourAgo(4)}&to=${hourAgo(2)}`)
  t.equal(exclusive.json().buckets.length, 1)

  const daily = await get('?granularity=day')
  t.equal(daily.statusCode, 200)
  const days = daily.json().buckets
  const total = days.reduce((sum: number, day: { activeLearners: number }) => sum + day.activeLearners, 0)
  t.ok(total >= 2, 'the day buckets hold both learners')

  const instructor = await h.token('ivy', { orgId: 'org-a', role: 'instructor' })
  t.equal((await get('', instructor)).statusCode, 200)
  const learner = await h.token('alice', { orgId: 'org-a' })
  t.match((await get('', learner)).json(), { statusCode: 403, code: 'FORBIDDEN' })
  const otherAdmin = await h.token('oz', { orgId: 'org-b', role: 'admin' })
  t.equal((await get('', otherAdmin)).statusCode, 403, 'another org\'s admin')

  // Days stand for their UTC midnight, so a daily range can be asked in days.
  const today = new Date().toISOString().slice(0, 10)
  const tomorrow = new Date(Date.now() + 24 * 3600000).toISOString().slice(0, 10)
  const byDay = await get(`?granularity=day&from=${today}&to=${tomorrow}`)
  t.equal(byDay.statusCode, 200, byDay.body)
  t.match(byDay.json(), { from: `${today}T00:00:00.000Z`, to: `${tomorrow}T00:00:00.000Z` })
  t.same(byDay.json().buckets, days.filter((day: { bucket: string }) => day.bucket.startsWith(today)), "today's bucket, as in the default range")
  const words = (await get('?from=yesterday')).json().message
  t.equal(words, 'Query string is invalid: querystring from must be a day (YYYY-MM-DD, UTC) or an RFC 3339 date-time with a time zone, such as 2026-12-02T09:30:00Z')

  for (const bad of ['?granularity=week', '?from=yesterday', '?from=2026-02-30', '?to=2026-12-01T24:30:00Z', '?from=2026-13-01T00:00:00Z', `?from=${hourAgo(1)}&to=${hourAgo(2)}`, `?from=${hourAgo(24 * 40)}&to=${hourAgo(0)}`, '?extra=1']) {
    const res = await get(bad)
    t.equal(res.statusCode, 400, bad)
    t.equal(res.json().code, 'INVALID_QUERY', bad)
  }
  // Instants PostgreSQL cannot read (year 0, past 9999 in UTC) are refused, not a 500.
  const outOfYears = ['?granularity=day&from=0000-01-01&to=0000-01-02', '?granularity=day&from=9999-12-30&to=9999-12-31T23:59:59-14:00']
  for (const bad of outOfYears) {
    const res = await get(bad)
    t.equal(res.statusCode, 400, bad)
    t.equal(res.json().code, 'INVALID_QUERY', bad)
  }
  t.equal((await get('?granularity=day&from=0001-01-01&to=0001-01-02')).statusCode, 200, 'the first day PostgreSQL reads')
  const early = await get('?to=0001-01-01T00:30:00Z')
  t.equal(early.json().from, '0001-01-01T00:00:00.000Z', 'the default range begins no earlier than year 1')
})

t.test('GET …/rollups refuses a range of more rows than it answers at once, and says how to ask for fewer', async (t) => {
  const h = await build(t)
  const admin = (org: string) => h.token('ada', { orgId: org, role: 'admin' })
  const get = async (org: string, query: string) =>
    h.app.inject({ method: 'GET', url: `/api/v1/orgs/${org}/rollups?granularity=hour&from=${hourAgo(24 * 31 - 1)}&to=${hourAgo(-1)}${query}`, headers: { authorization: `Bearer ${await admin(org)}` } })
  // 741 hours of 14 courses: 10,374 bucket rows, past the 10,000 a read answers.
  await h.sql`insert into org_rollups (org_id, granularity, bucket, course_id, active_learners, progress_events)
              select 'org-big', 'hour', ${THIS_HOUR}::timestamptz - make_interval(hours => h), 'c' || c, 1, 1
              from generate_series(0, 740) h, generate_series(1, 14) c`
  const big = await get('org-big', '')
  t.equal(big.statusCode, 400)
  t.match(big.json(), { code: 'RANGE_TOO_LARGE', message: /more than 10000 bucket rows .* granularity=day or one courseId/ })
  const oneCourse = await get('org-big', '&courseId=c3')
  t.equal(oneCourse.statusCode, 200, 'one course of the same range')
  t.equal(oneCourse.json().buckets.length, 741)
  // 741 hours of 68 event names: 50,388 counts by name, past the 50,000.
  await h.sql`insert into org_rollup_event_names (org_id, granularity, bucket, course_id, name, events)
              select 'org-names', 'hour', ${THIS_HOUR}::timestamptz - make_interval(hours => h), '', 'e' || n, 1
              from generate_series(0, 740) h, generate_series(1, 68) n`
  t.match((await get('org-names', '')).json(), { statusCode: 400, code: 'RANGE_TOO_LARGE' })
})
