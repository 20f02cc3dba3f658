// PUT /api/v1/orgs/:orgId/assignments replays the deferred events of those
// users: a dead letter that can no longer be stored is discarded as too_old,
// and a replay that fails never turns the committed upsert into a 500.
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import type { Principal } from '../../src/auth/principal.ts'
import adminRoutes from '../../src/api/routes/admin.ts'
import { build, progressEvent, testDatabase, testPool, type Harness } from '../helper.ts'
import type { Sql } from '../../src/db/pool.ts'

const DAY = 86400000
const ago = (ms: number) => new Date(Date.now() - ms).toISOString()

/** A dead letter of a progress event deferred long ago (no assignment then). */
async function oldDeadLetter(sql: Sql, userId: string, daysAgo: number): Promise<void> {
  const row = {
    i: 0, event_id: randomUUID(), occurred_at: ago(daysAgo * DAY), user_id: userId, org_hint: 'org-a', course_id: 'course-1',
    lesson_id: 'lesson-1', type: 'lesson_started', progress: null, time_spent_ms: 5, score: null, clock_skew_ms: null,
  }
  const [result] = await sql<{ o: string }[]>`select upsert_progress_batch(${JSON.stringify([row])}::text::json) as o`
  if (result!.o !== 'q') throw new Error(`expected the event deferred, got ${result!.o}`)
}

async function deferViaApi(t: Test, h: Harness, userId: string) {
  const token = await h.token(userId, { orgId: 'org-a' })
  const sent = await h.app.inject({
    method: 'POST', url: '/api/client/progress/batch', headers: { authorization: `Bearer ${token}` },
    payload: { events: [progressEvent({ lessonId: `lesson-of-${userId}` })] },
  })
  t.same(sent.json(), { accepted: 0, duplicates: 0, deferred: 1, rejected: [] })
}

const put = async (h: Harness, users: string[]) =>
  h.app.inject({
    method: 'PUT',
    url: '/api/v1/orgs/org-a/assignments',
    headers: { authorization: `Bearer ${await h.token('admin-1', { orgId: 'org-a', role: 'admin' })}` },
    payload: { assignments: users.map((userId) => ({ userId, courseId: 'course-1' })) },
  })

t.test('a dead letter whose day has no partition is discarded; the others of the PUT are replayed', async (t) => {
  const h = await build(t)
  await h.sql`insert into courses (org_id, course_id, lesson_count) values ('org-a', 'course-1', 2)`
  await oldDeadLetter(h.sql, 'zed', 45) // RETENTION_DAYS=30: no partition 45 days back
  await deferViaApi(t, h, 'bob')
  await deferViaApi(t, h, 'amy')

  const res = await put(h, ['zed', 'bob', 'amy'])
  t.equal(res.statusCode, 200, res.body)
  t.same(res.json(), { upserted: 3, replayed: { progress: 2, analytics: 0 } })
  const stored = await h.sql<{ user_id: string; org_id: string }[]>`select user_id, org_id from progress_events order by user_id`
  t.same(stored.map((r) => ({ ...r })), [{ user_id: 'amy', org_id: 'org-a' }, { user_id: 'bob', org_id: 'org-a' }])
  const [left] = await h.sql<{ n: number }[]>`select count(*)::int as n from dead_letter_events`
  t.equal(left!.n, 0, 'the old dead letter is gone')
})

t.test('a replay that fails leaves the committed assignments answered 200, and its chunk for the job', async (t) => {
  const h = await build(t)
  await h.sql`insert into courses (org_id, course_id, lesson_count) values ('org-a', 'course-1', 2)`
  // A dead letter the ingestion procedure cannot take (progress beyond smallint).
  await h.sql`insert into dead_letter_events (stream, event_id, occurred_at, user_id, course_id, org_hint, event)
              values ('progress', gen_random_uuid(), now() - interval '1 hour', 'broken', 'course-1', 'org-a',
                      jsonb_build_object('event_id', gen_random_uuid(), 'occurred_at', now() - interval '1 hour',
                                         'user_id', 'broken', 'org_hint', 'org-a', 'course_id', 'course-1',
                                         'lesson_id', 'l1', 'type', 'lesson_progress', 'progress', 99999))`
  const res = await put(h, ['broken'])
  t.equal(res.statusCode, 200, res.body)
  t.same(res.json(), { upserted: 1, replayed: { progress: 0, analytics: 0 } })
  const assigned = await h.sql`select 1 from assignments where org_id = 'org-a' and user_id = 'broken'`
  t.equal(assigned.length, 1, 'the assignment is committed')
  const [left] = await h.sql<{ n: number }[]>`select count(*)::int as n from dead_letter_events`
  t.equal(left!.n, 1, 'the failed chunk is rolled back, left for the replay job')
})

t.test('with retentionDays, a dead letter older than the window is discarded even if its partition exists', async (t) => {
  // The routes with the option set, as app.ts passes RETENTION_DAYS.
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const app = Fastify()
  app.decorate('sql', sql)
  app.decorateRequest('principal', null as unknown as Principal)
  app.addHook('onRequest', async (request) => {
    request.principal = { userId: 'admin-1', orgId: 'org-a', role: 'admin' }
  })
  await app.register(adminRoutes, { retentionDays: 30 })
  t.teardown(() => app.close())

  await sql`insert into courses (org_id, course_id, lesson_count) values ('org-a', 'course-1', 2)`
  await sql`select ensure_day_partition('progress_events', ${ago(40 * DAY).slice(0, 10)}::date)`
  await oldDeadLetter(sql, 'yan', 40)
  await oldDeadLetter(sql, 'zed', 45)
  await oldDeadLetter(sql, 'bob', 0.01)
  const res = await app.inject({
    method: 'PUT', url: '/api/v1/orgs/org-a/assignments',
    payload: { assignments: ['yan', 'zed', 'bob'].map((userId) => ({ userId, courseId: 'course-1' })) },
  })
  t.equal(res.statusCode, 200, res.body)
  t.same(res.json(), { upserted: 3, replayed: { progress: 1, analytics: 0 } })
  const stored = await sql<{ user_id: string }[]>`select user_id from progress_events`
  t.same(stored.map((r) => r.user_id), ['bob'])
  const [left] = await sql<{ n: number }[]>`select count(*)::int as n from dead_letter_events`
  t.equal(left!.n, 0)
})

t.test('the app passes RETENTION_DAYS to the assignments route: an old dead letter with a partition is discarded', async (t) => {
  const h = await build(t)
  await h.sql`insert into courses (org_id, course_id, lesson_count) values ('org-a', 'course-1', 2)`
  await h.sql`select ensure_day_partition('progress_events', ${ago(40 * DAY).slice(0, 10)}::date)`
  await oldDeadLetter(h.sql, 'yan', 40)
  await deferViaApi(t, h, 'bob')
  const res = await put(h, ['yan', 'bob'])
  t.equal(res.statusCode, 200, res.body)
  t.same(res.json(), { upserted: 2, replayed: { progress: 1, analytics: 0 } })
  const stored = await h.sql<{ user_id: string }[]>`select user_id from progress_events`
  t.same(stored.map((r) => r.user_id), ['bob'])
})

t.test('assignments are dated in commit order: a retried event of an org-less token is stored once, whichever org assigned first', async (t) => {
  const h = await build(t)
  for (const org of ['zz-org-a', 'aa-org-b']) await h.sql`insert into courses (org_id, course_id, lesson_count) values (${org}, 'mc', 1)`
  const assignment = JSON.stringify([{ userId: 'una', courseId: 'mc' }])
  // Org A's upload begins first and is still open when org B's is sent.
  const slow = await h.sql.reserve()
  t.teardown(() => slow.release())
  await slow`begin`
  await slow`select upsert_assignments('zz-org-a', ${assignment}::text::json)`
  const admin = await h.token('admin-1', { orgId: 'aa-org-b', role: 'admin' })
  const orgB = h.app.inject({
    method: 'PUT', url: '/api/v1/orgs/aa-org-b/assignments', headers: { authorization: `Bearer ${admin}` },
    payload: { assignments: [{ userId: 'una', courseId: 'mc' }] },
  })
  await new Promise((resolve) => setTimeout(resolve, 300))
  const una = await h.token('una') // no org_id: the event goes to her oldest assignment
  const event = progressEvent({ courseId: 'mc' })
  const send = async () =>
    (await h.app.inject({ method: 'POST', url: '/api/client/progress/batch', headers: { authorization: `Bearer ${una}` }, payload: { events: [event] } })).json()
  const first = await send()
  await slow`commit`
  t.equal((await orgB).statusCode, 200)
  const retry = await send()
  const stored = await h.sql<{ org_id: string }[]>`select org_id from progress_events where event_id = ${event.eventId as string}`
  t.same(stored.map((row) => row.org_id), ['zz-org-a'], `stored once, in the org that committed first (first send ${JSON.stringify(first)}, retry ${JSON.stringify(retry)})`)
  t.match(retry, { accepted: 0, duplicates: 1 }, 'the retry is a duplicate')
})
