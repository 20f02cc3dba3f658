// Cohort discovery: recovers well-separated synthetic clusters, gives the same
// answer twice, streams through a cursor; the k-means core on its own; the
// cohorts route's states and access.
import t from 'tap'
import { clusterGrid, discoverCohorts, TraitGrid } from '../../src/analytics/cohorts.ts'
import { chooseK, seededRandom } from '../../src/analytics/kmeans.ts'
import { ANALYTICS_QUEUES } from '../../src/analytics/types.ts'
import type { Sql } from '../../src/db/pool.ts'
import { build, testDatabase, testPool } from '../helper.ts'
import { testWorker } from './worker.ts'

const NOW = new Date('2024-03-05T12:00:00Z')

/**
 * Three groups of learners in org-c, with a little deterministic jitter:
 *   fast: ~8 lessons a week, nearly all time in one category, active ~23 of 28 days (40 learners)
 *   slow: no completions, time spread over three categories, active ~2 of 28 days (60 learners)
 *   steady: ~2 lessons a week, 90 % in one category, active ~8 of 28 days (30 learners)
 */
async function seedClusters(sql: Sql): Promise<void> {
  await sql`insert into courses (org_id, course_id, lesson_count, category)
            values ('org-c', 'k1', 200, 'math'), ('org-c', 'k2', 200, 'art'), ('org-c', 'k3', 200, 'music')`
  await sql`
    create table synthetic as
    select g.grp, g.grp || '-' || i as user_id, i,
           case g.grp when 'fast' then 30 + i % 5 when 'slow' then 0 else 7 + i % 3 end as completions,
           case g.grp when 'fast' then 21 + i % 4 when 'slow' then 1 + i % 3 else 7 + i % 3 end as active_days,
           case g.grp when 'fast' then array[36000000, (i % 4) * 600000, 0]
                      when 'slow' then array[3600000 + (i % 5) * 300000, 3600000, 3600000 - (i % 3) * 300000]
                      else array[32400000, 3600000 + (i % 3) * 300000, 0] end as ms
    from (values ('fast', 40), ('slow', 60), ('steady', 30)) as g(grp, n), generate_series(1, g.n) as i`
  await sql`insert into assignments (org_id, user_id, course_id, role)
            select 'org-c', s.user_id, c, 'learner' from synthetic s, unnest(array['k1', 'k2', 'k3']) as c`
  await sql`
    insert into user_course_progress (org_id, user_id, course_id, lessons_started, lessons_completed, time_spent_ms,
                                      started_at, last_activity_at)
    select 'org-c', s.user_id, 'k' || c, 1, 0, s.ms[c], ${NOW}::timestamptz - interval '60 days', ${NOW}::timestamptz - interval '1 day'
    from synthetic s, generate_series(1, 3) as c
    where s.ms[c] > 0`
  await sql`
    insert into user_lesson_progress (org_id, user_id, course_id, lesson_id, status, progress_pct, time_spent_ms,
                                      first_event_at, last_event_at, completed_at, event_count)
    select 'org-c', s.user_id, 'k1', 'lesson-' || j, 'completed', 100, 60000, at, at, at, 1
    from synthetic s, generate_series(1, s.completions) as j,
         lateral (select ${NOW}::timestamptz - (j % 27 + 1) * interval '1 day' as at) x`
  await sql`
    insert into learner_activity_days (org_id, user_id, day, events, active_ms, last_at)
    select 'org-c', s.user_id, (${NOW}::timestamptz at time zone 'UTC')::date - d, 3, 600000,
           ${NOW}::timestamptz - d * interval '1 day'
    from synthetic s, generate_series(0, s.active_days - 1) as d`
}

t.test('recovers well-separated clusters, the same way twice', async (t) => {
  const sql = testPool(t, await testDatabase(t))
  await seedClusters(sql)
  const first = await discoverCohorts(sql, 'org-c', NOW)
  t.equal(first.learners, 130)
  t.equal(first.k, 3, `k chosen by silhouette: ${JSON.stringify(first.tried)}`)
  t.ok(first.silhouette > 0.7, `silhouette ${first.silhouette}`)
  t.strictSame(
    first.archetypes.map((archetype) => [archetype.cluster, archetype.name, archetype.count]),
    [[0, 'Fast focused regulars', 40], [1, 'Steady focused drop-ins', 30], [2, 'Slow exploring sleepers', 60]],
  )
  // Each synthetic group lands whole in one cluster.
  const groups = await sql<{ grp: string; clusters: number[] }[]>`
    select split_part(user_id, '-', 1) as grp, array_agg(distinct cluster order by cluster) as clusters
    from cohort_members where org_id = 'org-c' group by 1 order by 1`
  t.strictSame(groups.map((g) => [g.grp, g.clusters]), [['fast', [0]], ['slow', [2]], ['steady', [1]]])
  const fast = first.archetypes[0]?.centroid
  t.ok(fast && Math.abs(fast.velocity - 0.8) < 0.03 && fast.affinity > 0.95 && Math.abs(fast.retention - 0.8) < 0.05, JSON.stringify(fast))

  const again = await discoverCohorts(sql, 'org-c', NOW)
  t.strictSame(again, first, 'deterministic: fixed seed, grid in key order')
  const [run] = await sql<{ k: number; learners: number; archetypes: unknown }[]>`select k, learners, archetypes from cohort_runs where org_id = 'org-c'`
  t.strictSame(run, { k: 3, learners: 130, archetypes: first.archetypes })
})

t.test('k-means core: seeded, order-independent, k by silhouette', async (t) => {
  const random = seededRandom(7)
  const centres = [[0.1, 0.1, 0.1], [0.9, 0.2, 0.5], [0.5, 0.9, 0.9], [0.2, 0.8, 0.2]]
  const rows = Array.from({ length: 4000 }, (_, i) => {
    const centre = centres[i % 4] as number[]
    return centre.map((x) => Math.min(1, Math.max(0, x + (random() - 0.5) * 0.1)))
  })
  const fill = (order: number[][]) => {
    const grid = new TraitGrid()
    for (const [v, a, r] of order) grid.add(v as number, a as number, r as number)
    return grid
  }
  const forward = clusterGrid(fill(rows))
  const backward = clusterGrid(fill([...rows].reverse()))
  t.equal(forward.centroids.length, 4)
  t.strictSame(backward, forward, 'the same clusters whatever order learners arrive in')
  for (const centroid of forward.centroids) {
    const nearest = Math.min(...centres.map((c) => Math.hypot(c[0]! - centroid.velocity, c[1]! - centroid.affinity, c[2]! - centroid.retention)))
    t.ok(nearest < 0.02, `centroid ${JSON.stringify(centroid)} is near a true centre`)
  }
  // One distinct point: one cluster.
  const single = new TraitGrid()
  single.add(0.5, 0.5, 0.5)
  single.add(0.5, 0.5, 0.5)
  t.equal(chooseK(single.points(), 1).best.k, 1)
  t.strictSame(clusterGrid(new TraitGrid()).centroids, [], 'no learners, no archetypes')
})

t.test('the cohorts route: calculating, then fresh; admins and instructors of the org', async (t) => {
  const h = await build(t)
  await seedClusters(h.sql)
  const admin = await h.token('root', { orgId: 'org-c', role: 'admin' })
  const get = (token: string, orgId = 'org-c') =>
    h.app.inject({ method: 'GET', url: `/api/v1/orgs/${orgId}/cohorts`, headers: { authorization: `Bearer ${token}` } })

  const first = await get(admin)
  t.equal(first.statusCode, 200, first.body)
  t.match(first.json(), { status: 'calculating', learners: 0, archetypes: [] })
  await get(admin)
  const worker = await testWorker(t, h.url, h.sql)
  t.equal(await worker.drain(ANALYTICS_QUEUES.cohorts), 1, 'one discovery for two reads')

  // The job used the real clock; the fixture's activity is old relative to it,
  // so recompute as of the fixture's day to check what is served.
  await discoverCohorts(h.sql, 'org-c', NOW)
  const served = (await get(await h.token('ivan', { orgId: 'org-c', role: 'instructor' }))).json()
  t.equal(served.status, 'refreshing', 'computed for 2024: older than STALE_AFTER_MS')
  t.equal(served.k, 3)
  t.equal(served.learners, 130)
  t.equal(served.archetypes.length, 3)
  t.match(served.method, /k-means\+\+/)

  await discoverCohorts(h.sql, 'org-c')
  t.equal((await get(admin)).json().status, 'fresh')
  t.equal((await get(await h.token('carl', { orgId: 'org-c' }))).statusCode, 403, 'a learner')
  t.equal((await get(admin, 'org-a')).statusCode, 403, 'another org')
  const unknownParameter = await h.app.inject({ method: 'GET', url: '/api/v1/orgs/org-c/cohorts?weeks=4', headers: { authorization: `Bearer ${admin}` } })
  t.equal(unknownParameter.statusCode, 400, 'it takes no query parameters')
  t.equal(unknownParameter.json().code, 'INVALID_QUERY')
})
