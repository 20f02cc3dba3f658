// Manual refresh: 202 with a job id, REFRESH_LIMIT per requester counted in
// the database (so two API instances share it), and the job's status shown
// only to those who may see the user.
import t from 'tap'
import { buildApp } from '../../src/api/app.ts'
import { ANALYTICS_QUEUES } from '../../src/analytics/types.ts'
import { build, seedOrg, testConfig } from '../helper.ts'
import { testWorker } from './worker.ts'

t.test('the sixth refresh in 10 minutes is 429, across instances', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice', 'bob'])
  const other = await buildApp({ config: testConfig, databaseUrl: h.url })
  await other.ready()
  t.teardown(() => other.close())
  const alice = await h.token('alice', { orgId: 'org-a' })
  const refresh = (app: typeof other, token: string, userId = 'alice') =>
    app.inject({ method: 'POST', url: `/api/v1/analytics/learner/${userId}/refresh`, headers: { authorization: `Bearer ${token}` } })

  const ids: string[] = []
  for (let i = 0; i < 5; i++) {
    const res = await refresh(i % 2 ? other : h.app, alice)
    t.equal(res.statusCode, 202, res.body)
    ids.push(res.json().jobId)
  }
  t.equal(new Set(ids).size, 5, 'each refresh is its own job')
  const sixth = await refresh(h.app, alice)
  t.equal(sixth.statusCode, 429)
  t.equal(sixth.json().code, 'RATE_LIMITED')
  const retryAfter = Number(sixth.headers['retry-after'])
  t.ok(retryAfter > 590 && retryAfter <= 600, `Retry-After ${retryAfter} s: when the first refresh leaves the window`)
  t.equal((await refresh(other, alice)).statusCode, 429, 'the other instance counts the same')

  // The limit is the requester's: bob still has his own five.
  t.equal((await refresh(h.app, await h.token('bob', { orgId: 'org-a' }), 'bob')).statusCode, 202)
  // User ids are an org's own: alice of org-b is another requester.
  await seedOrg(h.sql, 'org-b', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  t.equal((await refresh(h.app, await h.token('alice', { orgId: 'org-b' }))).statusCode, 202, "org-b's alice has five of her own")
  // Once the window has passed, alice may refresh again.
  await h.sql`update job_requests set requested_at = requested_at - interval '10 minutes' where requested_by = 'alice'`
  t.equal((await refresh(h.app, alice)).statusCode, 202)
})

t.test('refresh permissions and job status', async (t) => {
  const h = await build(t, { REFRESH_LIMIT: '2 per 1 minute' })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice', 'bob'])
  await seedOrg(h.sql, 'org-b', [{ courseId: 'course-9', lessonCount: 1 }], ['zoe'])
  const alice = await h.token('alice', { orgId: 'org-a' })
  const admin = await h.token('root', { orgId: 'org-a', role: 'admin' })
  const instructor = await h.token('ivan', { orgId: 'org-a', role: 'instructor' })
  const post = (userId: string, token: string) =>
    h.app.inject({ method: 'POST', url: `/api/v1/analytics/learner/${userId}/refresh`, headers: { authorization: `Bearer ${token}` } })
  const job = (jobId: string, token: string) =>
    h.app.inject({ method: 'GET', url: `/api/v1/jobs/${jobId}`, headers: { authorization: `Bearer ${token}` } })

  t.equal((await post('alice', instructor)).statusCode, 403, 'instructors read but do not refresh')
  t.equal((await post('alice', await h.token('bob', { orgId: 'org-a' }))).statusCode, 403)
  t.equal((await post('zoe', admin)).statusCode, 403, "another org's user")
  const byAdmin = await post('alice', admin)
  t.equal(byAdmin.statusCode, 202, byAdmin.body)
  const own = await post('alice', alice)
  t.equal(own.statusCode, 202)
  const jobId = own.json().jobId as string

  const created = await job(jobId, alice)
  t.equal(created.statusCode, 200, created.body)
  t.strictSame(created.json(), { state: 'created', startedAt: null, completedAt: null })
  t.equal((await job(byAdmin.json().jobId, admin)).statusCode, 200, "the admin's own request")
  t.equal((await job(jobId, await h.token('alice'))).statusCode, 200, 'the requester, with a token that names no org')
  // Contract section 6: the requester only. Anyone else gets the answer an unknown id gets.
  for (const [jobOf, token, who] of [
    [jobId, admin, 'an admin of the org'],
    [jobId, instructor, 'an instructor of the org'],
    [byAdmin.json().jobId, alice, 'the user it is about, when someone else asked'],
    [byAdmin.json().jobId, await h.token('alice'), 'the user it is about, with no org'],
    [jobId, await h.token('bob', { orgId: 'org-a' }), 'another learner'],
    [jobId, await h.token('root-b', { orgId: 'org-b', role: 'admin' }), "another org's admin"],
    [jobId, await h.token('alice', { orgId: 'org-b' }), 'a namesake in another org'],
    [byAdmin.json().jobId, await h.token('root', { orgId: 'org-b', role: 'instructor' }), "the requester's namesake in another org"],
    [byAdmin.json().jobId, await h.token('root'), "the requester's namesake with no org"],
  ] as const) {
    const res = await job(jobOf, token)
    t.equal(res.statusCode, 404, who)
    t.equal(res.json().code, 'NOT_FOUND', who)
  }
  t.equal((await job('00000000-0000-4000-8000-000000000000', alice)).statusCode, 404)
  t.equal((await job(`${jobId}?verbose=1`, alice)).json().code, 'INVALID_QUERY', 'it takes no query parameters')

  const worker = await testWorker(t, h.url, h.sql)
  t.equal(await worker.drain(ANALYTICS_QUEUES.recompute), 2)
  const done = (await job(jobId, alice)).json()
  t.equal(done.state, 'completed')
  t.ok(Date.parse(done.startedAt) <= Date.parse(done.completedAt))
  const analytics = await h.app.inject({ method: 'GET', url: '/api/v1/analytics/learner/alice', headers: { authorization: `Bearer ${alice}` } })
  t.equal(analytics.json().status, 'fresh')

  // REFRESH_LIMIT comes from the config: 2 per minute here.
  const third = await post('alice', alice)
  t.equal(third.statusCode, 202, 'the admin\'s refresh counted against the admin')
  const fourth = await post('alice', alice)
  t.equal(fourth.statusCode, 429)
  t.ok(Number(fourth.headers['retry-after']) <= 60)
})
