// Pattern evolution: one set-based query, zero-filled weeks, exact figures on
// the fixture; the route's validation and access.
import t from 'tap'
import { patternEvolution } from '../../src/analytics/store.ts'
import { build, isoAgo, progressEvent, seedOrg, testDatabase, testPool } from '../helper.ts'
import { NOW, seedMetricsFixture } from './fixtures.ts'

t.test('weekly series with empty weeks, from events and the stored history', async (t) => {
  const sql = testPool(t, await testDatabase(t))
  await seedMetricsFixture(sql)
  const weeks = await patternEvolution(sql, 'org-a', 'alice', 10, new Date(NOW))
  t.equal(weeks.length, 10)
  t.equal(weeks[0]?.weekStart, '2024-01-01')
  t.equal(weeks[9]?.weekStart, '2024-03-04', 'the current week is last')
  const byWeek = Object.fromEntries(weeks.map(({ weekStart, ...rest }) => [weekStart, rest]))
  const empty = { activeDays: 0, events: 0, timeSpentMs: 0, lessonsCompleted: 0 }
  t.strictSame(byWeek['2024-01-08'], { activeDays: 3, events: 3, timeSpentMs: 300000, lessonsCompleted: 0 }, 'stored history')
  t.strictSame(byWeek['2024-02-26'], { activeDays: 5, events: 6, timeSpentMs: 3000000, lessonsCompleted: 3 })
  t.strictSame(byWeek['2024-03-04'], { activeDays: 2, events: 3, timeSpentMs: 660000, lessonsCompleted: 1 }, 'skew-corrected day')
  for (const week of ['2024-01-01', '2024-01-15', '2024-01-22', '2024-01-29', '2024-02-05', '2024-02-12', '2024-02-19']) {
    t.strictSame(byWeek[week], empty, `${week} is zero-filled`)
  }
  // One week: only the current one. A learner with nothing: all zeros.
  t.strictSame(await patternEvolution(sql, 'org-a', 'alice', 1, new Date(NOW)), [{ weekStart: '2024-03-04', ...byWeek['2024-03-04'] }])
  const bob = await patternEvolution(sql, 'org-a', 'bob', 52, new Date(NOW))
  t.equal(bob.length, 52)
  t.ok(bob.every((week) => week.activeDays === 0 && week.events === 0 && week.timeSpentMs === 0 && week.lessonsCompleted === 0))
})

t.test('the pattern evolution route', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice', 'bob'])
  const alice = await h.token('alice', { orgId: 'org-a' })
  await h.app.inject({
    method: 'POST',
    url: '/api/client/progress/batch',
    headers: { authorization: `Bearer ${alice}` },
    payload: { events: [progressEvent({ type: 'lesson_completed', timeSpentMs: 7000, occurredAt: isoAgo(60000) })] },
  })
  const get = (query: string, token = alice, userId = 'alice') =>
    h.app.inject({ method: 'GET', url: `/api/v1/analytics/learner/${userId}/patterns/evolution${query}`, headers: { authorization: `Bearer ${token}` } })

  const res = await get('')
  t.equal(res.statusCode, 200, res.body)
  const body = res.json()
  t.equal(body.weeks.length, 12, 'twelve weeks by default')
  t.equal(body.orgId, 'org-a')
  // The event is a minute old: in the current week (or the one before, on a Monday at midnight).
  const recent = body.weeks.slice(10) as { timeSpentMs: number; lessonsCompleted: number; activeDays: number }[]
  t.equal(recent.reduce((sum, week) => sum + week.timeSpentMs, 0), 7000)
  t.equal(recent.reduce((sum, week) => sum + week.lessonsCompleted, 0), 1)
  t.equal(recent.reduce((sum, week) => sum + week.activeDays, 0), 1)
  t.equal(body.weeks.slice(0, 10).reduce((sum: number, week: { events: number }) => sum + week.events, 0), 0)
  t.equal((await get('?weeks=52')).json().weeks.length, 52)
  t.equal((await get('?weeks=1')).json().weeks.length, 1)

  // Plain digits only: an integer schema let ajv coerce 0x10 (16), 1e1, +5 and ' 12'.
  for (const bad of ['?weeks=0', '?weeks=53', '?weeks=abc', '?weeks=2.5', '?other=1', '?weeks=0x10', '?weeks=1e1', '?weeks=%2B5', '?weeks=%2012', '?weeks=012', '?weeks=']) {
    const invalid = await get(bad)
    t.equal(invalid.statusCode, 400, bad)
    t.equal(invalid.json().code, 'INVALID_QUERY', bad)
  }
  t.equal((await get('', await h.token('bob', { orgId: 'org-a' }))).statusCode, 403)
  t.equal((await get('', await h.token('root', { orgId: 'org-a', role: 'admin' }))).statusCode, 200)
  t.equal((await get('', await h.token('root', { orgId: 'org-b', role: 'admin' }))).statusCode, 403)
})
