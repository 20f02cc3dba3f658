// The read path: calculating -> fresh -> refreshing -> fresh, one recompute per
// user-role however many concurrent reads (on two API instances), cache
// invalidation across instances, and who may read what.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { buildApp } from '../../src/api/app.ts'
import { recomputeUserRole } from '../../src/analytics/compute.ts'
import { ANALYTICS_QUEUES } from '../../src/analytics/types.ts'
import type { Sql } from '../../src/db/pool.ts'
import { build, progressEvent, seedOrg, testConfig, type Harness } from '../helper.ts'
import { testWorker } from './worker.ts'

const HOUR = 3600000

async function queued(sql: Sql, queue: string): Promise<{ data: Record<string, unknown>; state: string }[]> {
  const [exists] = await sql<{ found: boolean }[]>`select to_regclass('pgboss.job') is not null as found`
  if (!exists?.found) return []
  return sql<{ data: Record<string, unknown>; state: string }[]>`
    select data, state::text from pgboss.job where name = ${queue} order by created_on`
}

const read = async (h: Harness, userId: string, token: string, query = '') =>
  h.app.inject({ method: 'GET', url: `/api/v1/analytics/learner/${userId}${query}`, headers: { authorization: `Bearer ${token}` } })

/** A second API instance on the same database, closed with the test. */
async function secondInstance(t: Parameters<typeof build>[0], h: Harness) {
  const app = await buildApp({ config: testConfig, databaseUrl: h.url })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

async function seed(h: Harness) {
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice', 'bob'])
  await seedOrg(h.sql, 'org-b', [{ courseId: 'course-9', lessonCount: 1 }], ['zoe'])
  const res = await h.app.inject({
    method: 'POST',
    url: '/api/client/progress/batch',
    headers: { authorization: `Bearer ${await h.token('alice')}` },
    payload: { events: [progressEvent({ type: 'lesson_completed', timeSpentMs: 5000 })] },
  })
  if (res.statusCode !== 200) throw new Error(res.body)
}

t.test('calculating, then fresh once the recompute lands, then refreshing when stale', async (t) => {
  const h = await build(t)
  await seed(h)
  const worker = await testWorker(t, h.url, h.sql)
  const alice = await h.token('alice', { orgId: 'org-a' })

  const first = await read(h, 'alice', alice)
  t.equal(first.statusCode, 200, first.body)
  t.strictSame(first.json(), { status: 'calculating', data: null, updatedAt: null, ageHours: null })
  const again = await read(h, 'alice', alice)
  t.equal(again.json().status, 'calculating')
  const jobs = await queued(h.sql, ANALYTICS_QUEUES.recompute)
  t.equal(jobs.length, 1, 'one recompute for two reads')
  t.strictSame(jobs[0]?.data, { orgId: 'org-a', userId: 'alice', role: 'learner' })

  t.equal(await worker.drain(ANALYTICS_QUEUES.recompute), 1)
  const fresh = (await read(h, 'alice', alice)).json()
  t.equal(fresh.status, 'fresh')
  t.equal(fresh.data.lessonsCompleted, 1)
  t.equal(fresh.data.timeSpent7dMs, 5000)
  t.ok(Date.now() - Date.parse(fresh.updatedAt) < 60000, 'updatedAt is when it was computed')
  t.ok(fresh.ageHours >= 0 && fresh.ageHours < 0.02)

  // Computed 7 hours ago: older than STALE_AFTER_MS (6 h). Served at once, one recompute enqueued.
  await recomputeUserRole(h.sql, { orgId: 'org-a', userId: 'bob', role: 'learner' }, new Date(Date.now() - 7 * HOUR))
  const bob = await h.token('bob', { orgId: 'org-a' })
  const stale = (await read(h, 'bob', bob)).json()
  t.equal(stale.status, 'refreshing')
  t.equal(stale.data.coursesEnrolled, 1)
  t.ok(stale.ageHours >= 7 && stale.ageHours < 7.1, `ageHours ${stale.ageHours}`)
  t.equal((await queued(h.sql, ANALYTICS_QUEUES.recompute)).filter((job) => job.data.userId === 'bob').length, 1)
  t.equal(await worker.drain(ANALYTICS_QUEUES.recompute), 1)
  // The landed recompute invalidates the cached stale row (NOTIFY), so the next read is fresh.
  let status = ''
  for (let i = 0; i < 50 && status !== 'fresh'; i++) {
    status = (await read(h, 'bob', bob)).json().status
    if (status !== 'fresh') await sleep(100)
  }
  t.equal(status, 'fresh')
})

t.test('one recompute per user-role however many concurrent stale reads, on two instances', async (t) => {
  const h = await build(t)
  await seed(h)
  const other = await secondInstance(t, h)
  await recomputeUserRole(h.sql, { orgId: 'org-a', userId: 'alice', role: 'learner' }, new Date(Date.now() - 7 * HOUR))
  const alice = await h.token('alice', { orgId: 'org-a' })
  const admin = await h.token('root', { orgId: 'org-a', role: 'admin' })
  const responses = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      (i % 2 ? other : h.app).inject({
        method: 'GET',
        url: '/api/v1/analytics/learner/alice',
        headers: { authorization: `Bearer ${i % 3 ? alice : admin}` },
      }),
    ),
  )
  t.strictSame([...new Set(responses.map((res) => res.json().status))], ['refreshing'])
  t.equal((await queued(h.sql, ANALYTICS_QUEUES.recompute)).length, 1)

  // The other roles are other user-roles: each gets its own single job.
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-2', lessonCount: 1 }], [])
  await h.sql`insert into assignments (org_id, user_id, course_id, role) values ('org-a', 'alice', 'course-2', 'instructor')`
  await Promise.all([
    read(h, 'alice', alice, '?role=instructor'),
    read(h, 'alice', alice, '?role=instructor'),
    read(h, 'root', admin, '?role=admin'),
    read(h, 'root', admin, '?role=admin'),
  ])
  const jobs = await queued(h.sql, ANALYTICS_QUEUES.recompute)
  t.strictSame(jobs.map((job) => `${job.data.userId}:${job.data.role}`).sort(), ['alice:instructor', 'alice:learner', 'root:admin'])
})

t.test('a recompute on one instance invalidates the other instance\'s cache', async (t) => {
  const h = await build(t)
  await seed(h)
  const other = await secondInstance(t, h)
  const key = { orgId: 'org-a', userId: 'alice', role: 'learner' } as const
  await recomputeUserRole(h.sql, key, new Date(Date.now() - HOUR))
  const alice = await h.token('alice', { orgId: 'org-a' })
  const get = () => other.inject({ method: 'GET', url: '/api/v1/analytics/learner/alice', headers: { authorization: `Bearer ${alice}` } })

  const before = (await get()).json()
  t.equal((await get()).json().updatedAt, before.updatedAt)
  t.strictSame(
    { hits: other.analytics.cache.stats.hits, misses: other.analytics.cache.stats.misses },
    { hits: 1, misses: 1 },
    'the second read came from the cache',
  )
  await recomputeUserRole(h.sql, key)
  let after = before
  for (let i = 0; i < 50 && after.updatedAt === before.updatedAt; i++) {
    await sleep(100)
    after = (await get()).json()
  }
  t.not(after.updatedAt, before.updatedAt, 'the other instance serves the new computation')
  t.ok(other.analytics.cache.stats.invalidations >= 1)

  const metrics = await other.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /analytics_cache_lookups_total\{result="hit"\} [1-9]/)
  t.match(metrics.body, /analytics_cache_hit_ratio \d/)
})

t.test('who may read', async (t) => {
  const h = await build(t)
  await seed(h)
  await h.sql`insert into assignments (org_id, user_id, course_id, role) values ('org-a', 'ivan', 'course-1', 'instructor')`
  const cases: { name: string; userId: string; token: string; query?: string; status: number; code?: string }[] = [
    { name: 'self', userId: 'alice', token: await h.token('alice', { orgId: 'org-a' }), status: 200 },
    { name: 'self without an org claim', userId: 'alice', token: await h.token('alice'), status: 200 },
    { name: 'admin of the org', userId: 'alice', token: await h.token('root', { orgId: 'org-a', role: 'admin' }), status: 200 },
    { name: 'instructor of the org', userId: 'alice', token: await h.token('ivan', { orgId: 'org-a', role: 'instructor' }), status: 200 },
    { name: 'another learner', userId: 'alice', token: await h.token('bob', { orgId: 'org-a' }), status: 403, code: 'FORBIDDEN' },
    { name: 'admin of another org', userId: 'alice', token: await h.token('root-b', { orgId: 'org-b', role: 'admin' }), status: 403, code: 'FORBIDDEN' },
    { name: 'another org\'s user', userId: 'zoe', token: await h.token('root', { orgId: 'org-a', role: 'admin' }), status: 403, code: 'FORBIDDEN' },
    { name: 'admin analytics of a learner', userId: 'alice', token: await h.token('alice', { orgId: 'org-a' }), query: '?role=admin', status: 403, code: 'FORBIDDEN' },
    { name: 'an org other than the token\'s', userId: 'alice', token: await h.token('alice', { orgId: 'org-a' }), query: '?orgId=org-b', status: 403, code: 'FORBIDDEN' },
    { name: 'a user in no org', userId: 'nobody', token: await h.token('nobody'), status: 404, code: 'NOT_FOUND' },
    { name: 'self in an org of no assignment', userId: 'zed', token: await h.token('zed', { orgId: 'org-a' }), status: 404, code: 'NOT_FOUND' },
    { name: 'instructor analytics of a learner, themself', userId: 'alice', token: await h.token('alice', { orgId: 'org-a' }), query: '?role=instructor', status: 404, code: 'NOT_FOUND' },
    { name: 'instructor analytics of a learner, by the admin', userId: 'alice', token: await h.token('root', { orgId: 'org-a', role: 'admin' }), query: '?role=instructor', status: 403, code: 'FORBIDDEN' },
    { name: 'instructor analytics of the instructor', userId: 'ivan', token: await h.token('ivan', { orgId: 'org-a', role: 'instructor' }), query: '?role=instructor', status: 200 },
    { name: 'unknown role', userId: 'alice', token: await h.token('alice'), query: '?role=owner', status: 400, code: 'INVALID_QUERY' },
    { name: 'no token', userId: 'alice', token: '', status: 401, code: 'UNAUTHORIZED' },
  ]
  for (const c of cases) {
    const res = await h.app.inject({
      method: 'GET',
      url: `/api/v1/analytics/learner/${c.userId}${c.query ?? ''}`,
      headers: c.token ? { authorization: `Bearer ${c.token}` } : {},
    })
    t.equal(res.statusCode, c.status, `${c.name}: ${res.body}`)
    if (c.code) t.equal(res.json().code, c.code, c.name)
  }
})

t.test('instructor analytics follow assignments made with role instructor through the API', async (t) => {
  const h = await build(t)
  await seed(h)
  const admin = await h.token('root', { orgId: 'org-a', role: 'admin' })
  const put = await h.app.inject({
    method: 'PUT',
    url: '/api/v1/orgs/org-a/assignments',
    headers: { authorization: `Bearer ${admin}` },
    payload: { assignments: [{ userId: 'ivan', courseId: 'course-1', role: 'instructor' }] },
  })
  t.equal(put.statusCode, 200, put.body)
  const [row] = await h.sql<{ role: string }[]>`select role from assignments where org_id = 'org-a' and user_id = 'ivan'`
  t.equal(row?.role, 'instructor')
  await recomputeUserRole(h.sql, { orgId: 'org-a', userId: 'ivan', role: 'instructor' })
  const res = await read(h, 'ivan', await h.token('ivan', { orgId: 'org-a', role: 'instructor' }), '?role=instructor')
  const data = res.json().data
  t.equal(data.coursesTaught, 1)
  t.equal(data.courses[0].courseId, 'course-1')
  t.strictSame(data.courses[0].completionFunnel, { enrolled: 2, started: 1, halfway: 1, completed: 0 })
  // An instructor assignment does not make a learner of them.
  const asLearner = await read(h, 'ivan', await h.token('ivan', { orgId: 'org-a' }))
  t.equal(asLearner.statusCode, 404)
  t.equal(asLearner.json().message, 'Not found: no learner assignment of user ivan in org org-a')
})

t.test('a token without an org reads the org its events went to: the oldest assignment', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-z', [{ courseId: 'course-1', lessonCount: 1 }], ['multi'])
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 1 }], ['multi'])
  await h.sql`update assignments set assigned_at = assigned_at - interval '1 day' where org_id = 'org-z'`
  const multi = await h.token('multi')
  const sent = await h.app.inject({
    method: 'POST',
    url: '/api/client/progress/batch',
    headers: { authorization: `Bearer ${multi}` },
    payload: { events: [progressEvent({ type: 'lesson_completed' })] },
  })
  t.equal(sent.json().accepted, 1)
  const [event] = await h.sql`select org_id from progress_events`
  t.equal(event!.org_id, 'org-z', 'ingestion files it under the oldest assignment')
  const evolution = await read(h, 'multi', multi, '/patterns/evolution?weeks=1')
  t.equal(evolution.statusCode, 200, evolution.body)
  t.equal(evolution.json().orgId, 'org-z', 'and analytics read that org, not the first by name')
})
