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
