// Authentication and tenancy (contract section 3): HS256 tokens, roles, the
// learner-userId rule, org-scoped reads. Tokens from an identity provider
// (JWKS) are in test/auth/jwks.test.ts.
import t from 'tap'
import { SignJWT } from 'jose'
import { build, progressEvent, seedOrg, TEST_SECRET } from '../helper.ts'

const batch = (token: string, events: unknown[]) => ({
  method: 'POST' as const,
  url: '/api/client/progress/batch',
  headers: { authorization: `Bearer ${token}` },
  payload: { events },
})

t.test('roles: learners write only for themselves, services for their org', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice', 'bob'])
  await seedOrg(h.sql, 'org-b', [{ courseId: 'course-1', lessonCount: 2 }], ['zed'])
  const service = await h.token('ingest-bot', { orgId: 'org-a', role: 'service' })
  const res = await h.app.inject(batch(service, [progressEvent({ userId: 'alice' }), progressEvent({ userId: 'bob' })]))
  t.same(res.json(), { accepted: 2, duplicates: 0, deferred: 0, rejected: [] }, 'a service token writes for users of its org')
  const foreign = await h.app.inject(batch(service, [progressEvent({ userId: 'zed' })]))
  t.same(foreign.json().deferred, 1, "another org's user never resolves into the service's org")
  const [zed] = await h.sql<{ n: number }[]>`select count(*)::int as n from progress_events where user_id = 'zed'`
  t.equal(zed?.n, 0)

  const admin = await h.token('admin-a', { orgId: 'org-a', role: 'admin' })
  const asAdmin = await h.app.inject(batch(admin, [progressEvent({ userId: 'alice' })]))
  t.equal(asAdmin.statusCode, 403, 'only service tokens may write for other users')
  const noOrg = await h.token('bot', { role: 'service' })
  t.equal((await h.app.inject(batch(noOrg, [progressEvent()]))).statusCode, 401, 'a service token needs org_id')
})

t.test('reads are org-scoped', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 4 }], ['alice'])
  await h.app.inject(batch(await h.token('alice'), [progressEvent({ type: 'lesson_completed' })]))
  const read = async (token: string, url = '/api/v1/orgs/org-a/users/alice/progress') =>
    h.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } })

  const instructor = await read(await h.token('teacher', { orgId: 'org-a', role: 'instructor' }))
  t.equal(instructor.statusCode, 200)
  t.equal(instructor.json().courses[0].progressPct, 25)
  t.equal((await read(await h.token('admin-a', { orgId: 'org-a', role: 'admin' }))).statusCode, 200)
  t.equal((await read(await h.token('admin-b', { orgId: 'org-b', role: 'admin' }))).statusCode, 403, 'cross-org read')
  t.equal((await read(await h.token('alice', { orgId: 'org-a' }))).statusCode, 403, 'a learner may not use org reads')
  const me = await read(await h.token('alice'), '/api/v1/progress/me?courseId=course-1')
  t.equal(me.json().courses.length, 1)
  t.equal(me.json().courses[0].lessons[0].status, 'completed')
})

t.test('admin routes: courses and assignments need an admin or service of that org', async (t) => {
  const h = await build(t)
  const put = async (token: string, url: string, payload: object) =>
    h.app.inject({ method: 'PUT', url, headers: { authorization: `Bearer ${token}` }, payload })
  const admin = await h.token('admin-a', { orgId: 'org-a', role: 'admin' })
  const courses = await put(admin, '/api/v1/orgs/org-a/courses', { courses: [{ courseId: 'c1', lessonCount: 4, category: 'math' }, { courseId: 'c1', lessonCount: 2 }] })
  t.same(courses.json(), { upserted: 1 }, 'the last of two entries for one course wins')
  const assigned = await put(admin, '/api/v1/orgs/org-a/assignments', { assignments: [{ userId: 'alice', courseId: 'c1' }, { userId: 't', courseId: 'c1', role: 'instructor' }] })
  t.equal(assigned.json().upserted, 2)
  const [row] = await h.sql<{ lesson_count: number; roles: string }[]>`
    select lesson_count, (select string_agg(role, ',' order by role) from assignments) as roles from courses where course_id = 'c1'`
  t.same(row, { lesson_count: 2, roles: 'instructor,learner' })

  await h.app.inject(batch(await h.token('alice'), [progressEvent({ courseId: 'c1', type: 'lesson_completed' })]))
  await put(admin, '/api/v1/orgs/org-a/courses', { courses: [{ courseId: 'c1', lessonCount: 1 }] })
  const [view] = await h.sql<{ progress_pct: string; completed: boolean }[]>`
    select progress_pct::text, completed_at is not null as completed from user_course_progress_view where user_id = 'alice'`
  t.same(view, { progress_pct: '100.00', completed: true }, 'course progress follows a changed lesson count')

  const learner = await h.token('alice', { orgId: 'org-a' })
  t.equal((await put(learner, '/api/v1/orgs/org-a/courses', { courses: [{ courseId: 'c2', lessonCount: 1 }] })).statusCode, 403)
  const otherAdmin = await h.token('admin-b', { orgId: 'org-b', role: 'admin' })
  t.equal((await put(otherAdmin, '/api/v1/orgs/org-a/assignments', { assignments: [{ userId: 'x', courseId: 'c1' }] })).statusCode, 403)
  const bad = await put(admin, '/api/v1/orgs/org-a/courses', { courses: [{ courseId: 'c3', lessonCount: -1 }] })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'INVALID_BODY')

  // A JSON body is taken as sent: no type is converted (a query string's text is), no unknown field passes.
  for (const [url, body] of [
    ['courses', { courses: [{ courseId: 'c4', lessonCount: '0x10' }] }],
    ['courses', { courses: [{ courseId: 'c4', lessonCount: null }] }],
    ['courses', { courses: [{ courseId: 'c4', lessonCount: true }] }],
    ['courses', { courses: [{ courseId: false, lessonCount: 1 }] }],
    ['courses', { courses: [{ courseId: 'c4', lessonCount: 1, category: true }] }],
    ['courses', { courses: [{ courseId: 'c4', lessonCount: 1 }], extra: 1 }],
    ['assignments', { assignments: [{ userId: 42, courseId: 'c1' }] }],
    ['assignments', { assignments: [{ userId: 'u4', courseId: 'c1' }], constructor: 1 }],
  ] as const) {
    const res = await put(admin, `/api/v1/orgs/org-a/${url}`, body)
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.equal(res.json().code, 'INVALID_BODY')
  }
  const [written] = await h.sql<{ n: number }[]>`
    select (select count(*) from courses where course_id in ('c4', 'false')) + (select count(*) from assignments where user_id in ('42', 'u4'))::int as n`
  t.equal(Number(written!.n), 0, 'and nothing of them is written')
})

t.test('sentAt stores the client clock offset per event', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const sentAt = new Date(Date.now() - 3_600_000).toISOString() // a client clock one hour behind
  await h.app.inject({ ...batch(await h.token('alice'), [progressEvent()]), payload: { events: [progressEvent()], sentAt } })
  const [row] = await h.sql<{ skew: number }[]>`select clock_skew_ms as skew from progress_events`
  t.ok(row && row.skew >= 3_600_000 && row.skew < 3_660_000, `skew ${row?.skew} ms is about one hour`)
})

t.test('a verified token is remembered only until it expires', async (t) => {
  const h = await build(t)
  const token = await h.token('alice', { ttl: 3 }) // valid for at least 2 s (exp has whole seconds)
  const me = () => h.app.inject({ method: 'GET', url: '/api/v1/progress/me', headers: { authorization: `Bearer ${token}` } })
  t.equal((await me()).statusCode, 200)
  t.equal((await me()).statusCode, 200, 'the second use is served from the cache')
  await new Promise((resolve) => setTimeout(resolve, 3100))
  const expired = await me()
  t.equal(expired.statusCode, 401, 'and refused once its exp has passed')
  t.match(expired.json().message, /expired/)
})

t.test('a header with more than "Bearer <token>", and a token whose role is null, are 401', async (t) => {
  const h = await build(t)
  const me = (authorization: string) => h.app.inject({ method: 'GET', url: '/api/v1/progress/me', headers: { authorization } })
  const alice = await h.token('alice')
  t.equal((await me(`Bearer ${alice}`)).statusCode, 200)
  const trailing = await me(`Bearer ${alice} junk`)
  t.equal(trailing.statusCode, 401, 'a trailing word is not ignored')
  t.match(trailing.json().message, /Authorization must be "Bearer <token>"/)
  const nullRole = await new SignJWT({ role: null }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('1h').sign(new TextEncoder().encode(TEST_SECRET))
  const refused = await me(`Bearer ${nullRole}`)
  t.equal(refused.statusCode, 401, 'a null role is not the default learner role')
  t.match(refused.json().message, /token role null is not one of/)
})

t.test('a token without exp is 401: it would never expire', async (t) => {
  const h = await build(t)
  const forever = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(new TextEncoder().encode(TEST_SECRET))
  const res = await h.app.inject({ method: 'GET', url: '/api/v1/progress/me', headers: { authorization: `Bearer ${forever}` } })
  t.equal(res.statusCode, 401)
  t.match(res.json(), { code: 'UNAUTHORIZED', message: /token has no exp claim: tokens must expire/ })
})
