import t from 'tap'
import { analyticsEvent, build, isoAgo, progressEvent, seedOrg } from '../helper.ts'

const post = (h: Awaited<ReturnType<typeof build>>, url: string, token: string, payload: unknown) =>
  h.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${token}` }, payload: payload as object })

t.test('a valid progress batch is stored and reported accepted', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const token = await h.token('alice')
  const events = [progressEvent({ type: 'lesson_started' }), progressEvent({ progress: 40 }), progressEvent({ type: 'lesson_completed', lessonId: 'lesson-2' })]
  const res = await post(h, '/api/client/progress/batch', token, { events, sentAt: new Date().toISOString() })
  t.equal(res.statusCode, 200, res.body)
  t.same(res.json(), { accepted: 3, duplicates: 0, deferred: 0, rejected: [] })
  t.equal(res.headers['x-client-queue-lag'], '0')
  const [row] = await h.sql<{ count: number }[]>`select count(*)::int as count from progress_events where org_id = 'org-a'`
  t.equal(row?.count, 3)
  const [course] = await h.sql`select * from user_course_progress_view where user_id = 'alice'`
  t.equal(course!.lessons_completed, 1)
  t.equal(Number(course!.progress_pct), 50)

  const again = await post(h, '/api/client/progress/batch', token, { events })
  t.same(again.json(), { accepted: 0, duplicates: 3, deferred: 0, rejected: [] })
})

t.test('analytics batch: accepted, deferred without any assignment', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const res = await post(h, '/api/analytics/events/batch', await h.token('alice'), { events: [analyticsEvent(), analyticsEvent()] })
  t.same(res.json(), { accepted: 2, duplicates: 0, deferred: 0, rejected: [] })
  const bob = await post(h, '/api/analytics/events/batch', await h.token('bob'), { events: [analyticsEvent()] })
  t.same(bob.json(), { accepted: 0, duplicates: 0, deferred: 1, rejected: [] })
  const single = await post(h, '/api/analytics/events', await h.token('alice'), analyticsEvent({ occurredAt: isoAgo(40 * 86400000) }))
  t.equal(single.json().rejected[0].code, 'too_old')
})

t.test('a learner token without org_id: a retry lands where the first send did, after a second org assigns the learner', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-m', [{ courseId: 'course-1', lessonCount: 2 }], ['mia'])
  const token = await h.token('mia') // no org_id: the org comes from the assignment
  const progress = progressEvent({ type: 'lesson_completed', timeSpentMs: 5000 })
  const analytics = analyticsEvent({ courseId: 'course-1' })
  const send = () => Promise.all([
    post(h, '/api/client/progress/batch', token, { events: [progress] }),
    post(h, '/api/analytics/events/batch', token, { events: [analytics] }),
  ])
  for (const res of await send()) t.same(res.json(), { accepted: 1, duplicates: 0, deferred: 0, rejected: [] })
  // A second org, whose id sorts first, assigns her to a course of the same id.
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['mia'])
  for (const res of await send()) t.same(res.json(), { accepted: 0, duplicates: 1, deferred: 0, rejected: [] }, 'counted once')
  const orgs = await h.sql<{ org_id: string }[]>`
    select org_id from progress_events union all select org_id from analytics_events`
  t.same(orgs.map((row) => row.org_id), ['org-m', 'org-m'])
  const [lesson] = await h.sql<{ time_spent_ms: number }[]>`select time_spent_ms from user_lesson_progress where user_id = 'mia'`
  t.equal(Number(lesson?.time_spent_ms), 5000)
})

t.test('analytics events wait for an assignment in the token\u2019s org, as progress events do', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const service = await h.token('ingest-bot', { orgId: 'org-a', role: 'service' })
  const ghost = await h.token('ghost', { orgId: 'org-a' })
  const deferred = { accepted: 0, duplicates: 0, deferred: 1, rejected: [] }
  const byService = analyticsEvent({ userId: 'nobody' })
  t.same((await post(h, '/api/analytics/events', service, byService)).json(), deferred, 'a user the org has not assigned')
  t.same((await post(h, '/api/analytics/events', ghost, analyticsEvent())).json(), deferred, 'a learner of no course yet')
  const member = await post(h, '/api/analytics/events', service, analyticsEvent({ userId: 'alice', courseId: 'course-9' }))
  t.same(member.json(), { accepted: 1, duplicates: 0, deferred: 0, rejected: [] }, 'an assigned learner, any course named')
  const [stored] = await h.sql<{ n: number }[]>`select count(*)::int as n from analytics_events where user_id in ('nobody', 'ghost')`
  t.equal(stored?.n, 0)

  const assign = await h.app.inject({
    method: 'PUT',
    url: '/api/v1/orgs/org-a/assignments',
    headers: { authorization: `Bearer ${service}` },
    payload: { assignments: [{ userId: 'nobody', courseId: 'course-1' }, { userId: 'ghost', courseId: 'course-1' }] },
  })
  t.equal(assign.statusCode, 200, assign.body)
  t.same(assign.json().replayed, { progress: 0, analytics: 2 }, 'replayed when the assignment arrives')
  const orgs = await h.sql<{ org_id: string }[]>`select org_id from analytics_events where user_id in ('nobody', 'ghost')`
  t.same(orgs.map((row) => row.org_id), ['org-a', 'org-a'])
})

const DAY = 86400000

t.test('one invalid event among valid ones is rejected by index; the rest are stored', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice'])
  const events = [
    progressEvent(),
    progressEvent({ progress: 'fifty' }),
    progressEvent({ type: 'lesson_progress', progress: undefined }),
    progressEvent({ eventId: 'not-a-uuid' }),
    progressEvent({ occurredAt: '2026-13-45T99:00:00Z' }),
    'not an object',
    progressEvent({ lessonId: 'lesson-2' }),
    progressEvent({ userId: '' }), // no user's id: rejected alone, not a 403 for the batch
  ]
  const res = await post(h, '/api/client/progress/batch', await h.token('alice'), { events })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.accepted, 2)
  t.same(body.rejected.map((r: { index: number; code: string }) => [r.index, r.code]), [
    [1, 'invalid_event'], [2, 'invalid_event'], [3, 'invalid_event'], [4, 'invalid_event'], [5, 'invalid_event'], [7, 'invalid_event'],
  ])
  t.equal(body.accepted + body.duplicates + body.deferred + body.rejected.length, events.length, 'every event accounted once')
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from progress_events`
  t.equal(row?.n, 2)
})

t.test('a service token must name each event\u2019s userId: its own id is no learner\u2019s', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice'])
  const service = await h.token('ingest-bot', { orgId: 'org-a', role: 'service' })
  const res = await post(h, '/api/client/progress/batch', service, { events: [progressEvent({ userId: 'alice' }), progressEvent()] })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { accepted: 1, deferred: 0, rejected: [{ index: 1, code: 'invalid_event', message: 'userId is required with a service token' }] })
  const analytics = await post(h, '/api/analytics/events', service, analyticsEvent())
  t.match(analytics.json(), { accepted: 0, rejected: [{ index: 0, code: 'invalid_event' }] }, 'the single-event analytics route too')
  const [stored] = await h.sql<{ n: number }[]>`select (select count(*) from progress_events where user_id = 'ingest-bot')
    + (select count(*) from dead_letter_events where user_id = 'ingest-bot')
    + (select count(*) from analytics_events where user_id = 'ingest-bot') as n`
  t.equal(Number(stored?.n), 0, 'nothing stored under the service\u2019s id')
})

t.test('too_old and in_future at their boundaries; partitions exist where the contract says', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice'])
  const now = Date.now()
  const margin = 5000 // request latency between building the events and the server's clock
  const events = [
    progressEvent({ occurredAt: new Date(now - 30 * DAY + margin).toISOString() }),
    progressEvent({ occurredAt: new Date(now - 30 * DAY - margin).toISOString() }),
    progressEvent({ occurredAt: new Date(now + DAY - margin).toISOString() }),
    progressEvent({ occurredAt: new Date(now + DAY + margin).toISOString() }),
  ]
  const res = await post(h, '/api/client/progress/batch', await h.token('alice'), { events })
  const body = res.json()
  t.equal(body.accepted, 2, 'just inside the window on both sides is stored')
  t.same(body.rejected.map((r: { index: number; code: string }) => [r.index, r.code]), [[1, 'too_old'], [3, 'in_future']])
  const [range] = await h.sql<{ from_day: string; to_day: string }[]>`select from_day::text, to_day::text from partition_range('progress_events')`
  const day = (offset: number) => new Date(now + offset * DAY).toISOString().slice(0, 10)
  t.equal(range?.from_day, day(-30), 'partitions reach RETENTION_DAYS back')
  t.equal(range?.to_day, day(7), 'and PARTITIONS_AHEAD_DAYS ahead')
})

t.test('any RFC 3339 offset is stored as its instant, beside the batch\u2019s other events; digits past the millisecond kept', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice'])
  const token = await h.token('alice')
  // RFC 3339 allows offsets up to ±23:59; PostgreSQL reads only up to ±15:59.
  const instant = new Date(Date.now() - 3600000)
  const utc = instant.toISOString().slice(0, 19)
  const at = (offsetHours: number, fraction: string) => {
    const local = new Date(instant.getTime() + offsetHours * 3600000).toISOString().slice(0, 19)
    return `${local}${fraction}${offsetHours < 0 ? '-' : '+'}${String(Math.abs(offsetHours)).padStart(2, '0')}:00`
  }
  const cases = [
    { offsetHours: 16, fraction: '', stored: '.000000' },
    { offsetHours: -23, fraction: '.1234567', stored: '.123457' }, // PostgreSQL rounds to the microsecond
    { offsetHours: 5, fraction: '.5', stored: '.500000' },
  ]
  const events = [progressEvent(), ...cases.map((c) => progressEvent({ occurredAt: at(c.offsetHours, c.fraction) }))]
  const res = await post(h, '/api/client/progress/batch', token, { events })
  t.equal(res.statusCode, 200, res.body)
  t.same(res.json(), { accepted: 4, duplicates: 0, deferred: 0, rejected: [] })
  const stored = await h.sql<{ event_id: string; at: string }[]>`
    select event_id::text, to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as at from progress_events`
  const storedAt = new Map(stored.map((row) => [row.event_id, row.at]))
  cases.forEach((c, k) => t.equal(storedAt.get(events[k + 1]!.eventId as string), `${utc}${c.stored}`, `offset ${c.offsetHours}: the same instant`))

  const inUtc = cases.map((c, k) => ({ ...events[k + 1], occurredAt: `${utc}${c.fraction}Z` }))
  const again = await post(h, '/api/client/progress/batch', token, { events: inUtc })
  t.same(again.json(), { accepted: 0, duplicates: 3, deferred: 0, rejected: [] }, 'the same instants written in UTC are retries')
})

t.test('prototype keys and oversized properties are rejected and nothing is written', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice'])
  const token = await h.token('alice')
  const events = [
    analyticsEvent({ properties: { prototype: { x: 1 } } }),
    analyticsEvent({ properties: { nested: { constructor: 1 } } }),
    analyticsEvent({ properties: { big: 'x'.repeat(9000) } }),
    analyticsEvent({ properties: { a: { b: { c: { d: { e: 1 } } } } } }),
    analyticsEvent({ name: 'Not Valid!' }),
  ]
  const res = await post(h, '/api/analytics/events/batch', token, { events })
  t.equal(res.statusCode, 200)
  t.same(res.json().rejected.map((r: { code: string }) => r.code), Array(5).fill('invalid_event'))
  const [row] = await h.sql<{ n: number }[]>`select (select count(*) from analytics_events) + (select count(*) from dead_letter_events) as n`
  t.equal(row?.n, 0)
})

t.test('__proto__ and constructor.prototype keys: that event alone is rejected, the rest of the batch stored', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice'])
  const raw = (event: Record<string, unknown>, poison: string, where: 'event' | 'properties') => {
    const text = JSON.stringify(event)
    return where === 'event' ? text.replace(/^\{/, `{${poison},`) : text.replace(/\}$/, `,"properties":{"a":{${poison}}}}`)
  }
  const poisons = ['"__proto__":{"polluted":1}', '"constructor":{"prototype":{"polluted":1}}']
  const events = [
    JSON.stringify(analyticsEvent()),
    ...poisons.flatMap((poison) => [raw(analyticsEvent(), poison, 'event'), raw(analyticsEvent(), poison, 'properties')]),
    JSON.stringify(analyticsEvent()),
  ]
  const res = await h.app.inject({
    method: 'POST',
    url: '/api/analytics/events/batch',
    headers: { authorization: `Bearer ${await h.token('alice')}`, 'content-type': 'application/json' },
    payload: `{"__proto__":{"polluted":1},"events":[${events.join(',')}]}`,
  })
  t.equal(res.statusCode, 200, res.body)
  const body = res.json()
  t.equal(body.accepted, 2)
  t.same(body.rejected.map((r: { index: number; code: string }) => [r.index, r.code]), [1, 2, 3, 4].map((index) => [index, 'invalid_event']))
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched')
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from analytics_events where properties::text like '%polluted%'`
  t.equal(row?.n, 0)
})

t.test('20 concurrent posts of one batch store each event exactly once', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice'])
  const token = await h.token('alice')
  const events = Array.from({ length: 10 }, (_, i) => progressEvent({ lessonId: `lesson-${i % 3}`, timeSpentMs: 1000 }))
  const responses = await Promise.all(Array.from({ length: 20 }, () => post(h, '/api/client/progress/batch', token, { events })))
  t.ok(responses.every((r) => r.statusCode === 200), 'all answered 200')
  const accepted = responses.reduce((sum, r) => sum + r.json().accepted, 0)
  const duplicates = responses.reduce((sum, r) => sum + r.json().duplicates, 0)
  t.equal(accepted, 10, 'each event accepted exactly once across all posts')
  t.equal(duplicates, 190)
  const [row] = await h.sql<{ n: number; ms: number }[]>`
    select (select count(*)::int from progress_events) as n, (select sum(time_spent_ms)::int from user_lesson_progress) as ms`
  t.equal(row?.n, 10)
  t.equal(row?.ms, 10000, 'time spent counted once per distinct event')
})

t.test('overlapping concurrent batches for one learner never deadlock', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 5 }, { courseId: 'course-2', lessonCount: 5 }], ['alice'])
  const token = await h.token('alice')
  const pool = Array.from({ length: 60 }, (_, i) =>
    progressEvent({ courseId: `course-${1 + (i % 2)}`, lessonId: `lesson-${i % 5}`, type: i % 7 === 0 ? 'lesson_completed' : 'lesson_progress', progress: i % 100 }),
  )
  // 12 batches, each an overlapping window of the pool in a different order.
  const batches = Array.from({ length: 12 }, (_, b) => {
    const slice = pool.slice((b * 4) % 40, ((b * 4) % 40) + 20)
    return b % 2 ? slice.reverse() : slice
  })
  const responses = await Promise.all(batches.map((events) => post(h, '/api/client/progress/batch', token, { events })))
  t.same(responses.map((r) => r.statusCode), Array(12).fill(200), 'no batch failed (a deadlock would be a 503)')
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from progress_events`
  const distinct = new Set(batches.flat().map((e) => e.eventId)).size
  t.equal(row?.n, distinct)
  t.equal(responses.reduce((sum, r) => sum + r.json().accepted, 0), distinct)
})

t.test('deferred events update progress exactly once after the assignment arrives', async (t) => {
  const h = await build(t)
  await h.sql`insert into courses (org_id, course_id, lesson_count) values ('org-a', 'course-1', 2)`
  const token = await h.token('carol', { orgId: 'org-a' })
  const events = [progressEvent({ lessonId: 'lesson-1', type: 'lesson_completed', timeSpentMs: 500 }), progressEvent({ lessonId: 'lesson-2', timeSpentMs: 700 })]
  const first = await post(h, '/api/client/progress/batch', token, { events })
  t.same(first.json(), { accepted: 0, duplicates: 0, deferred: 2, rejected: [] })
  const retry = await post(h, '/api/client/progress/batch', token, { events })
  t.same(retry.json(), { accepted: 0, duplicates: 2, deferred: 0, rejected: [] }, 'a retried deferred event is a duplicate')

  const admin = await h.token('admin-1', { orgId: 'org-a', role: 'admin' })
  const assign = () =>
    h.app.inject({
      method: 'PUT',
      url: '/api/v1/orgs/org-a/assignments',
      headers: { authorization: `Bearer ${admin}` },
      payload: { assignments: [{ userId: 'carol', courseId: 'course-1' }] },
    })
  const assigned = await assign()
  t.equal(assigned.statusCode, 200)
  t.same(assigned.json(), { upserted: 1, replayed: { progress: 2, analytics: 0 } })
  t.same((await assign()).json().replayed, { progress: 0, analytics: 0 }, 'a second assignment replays nothing')
  const afterwards = await post(h, '/api/client/progress/batch', token, { events })
  t.same(afterwards.json(), { accepted: 0, duplicates: 2, deferred: 0, rejected: [] })

  const progress = await h.app.inject({ method: 'GET', url: '/api/v1/progress/me', headers: { authorization: `Bearer ${token}` } })
  const [course] = progress.json().courses
  t.equal(course.lessonsCompleted, 1)
  t.equal(course.progressPct, 50)
  t.equal(course.timeSpentMs, 1200, 'each deferred event counted once')
  const [left] = await h.sql<{ n: number }[]>`select count(*)::int as n from dead_letter_events`
  t.equal(left?.n, 0)
})
