// node perf/analytics-bench.ts [--learners 10000] [--events 60] [--quick]
//
// Learner-analytics benchmarks (docs/analytics.md, "Performance"), on a fresh
// database: an embedded PostgreSQL in a temporary directory unless
// DATABASE_URL names a server where a scratch database may be created.
//   - the daily batch for N learners x 3 roles (learner, instructor, admin),
//     sequential and with chunks in parallel; seed 000 planned 2 hours for
//     10,000 users x 3 roles;
//   - one user-role on demand, and the read path (cache hit and miss);
//   - pattern evolution (52 weeks);
//   - cohort discovery end to end for the org, and the clustering step alone
//     on a stream of 1.56M synthetic learners (seed 002: 1.56M learners/minute).
// Progress goes to stderr; the results are printed as JSON on stdout.
// --keep (with DATABASE_URL) leaves the seeded database in place for profiling;
// --seed-only stops after seeding and one batch.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { buildApp } from '../src/api/app.ts'
import { clusterGrid, COHORT_METHOD, discoverCohorts, fillGrid, TraitGrid, type Centroid } from '../src/analytics/cohorts.ts'
import { batchChunks, recomputeUserRole, runDailyBatch } from '../src/analytics/compute.ts'
import { seededRandom } from '../src/analytics/kmeans.ts'
import { patternEvolution } from '../src/analytics/store.ts'
import { mintToken } from '../src/auth/tokens.ts'
import { openEmbedded } from '../src/db/embedded.ts'
import { migrate } from '../src/db/migrate.ts'
import { createPool, type Sql } from '../src/db/pool.ts'

const { values: flags } = parseArgs({
  options: {
    learners: { type: 'string', default: '10000' },
    events: { type: 'string', default: '60' },
    quick: { type: 'boolean', default: false },
    // Keeps the seeded database (with DATABASE_URL) and names it on stderr, to profile queries.
    keep: { type: 'boolean', default: false },
    // With --keep: seed, run the batch once, and stop (a dataset to profile).
    'seed-only': { type: 'boolean', default: false },
  },
})
const learners = Number(flags.learners)
const eventsPerLearner = Number(flags.events)
if (!Number.isInteger(learners) || learners < 10 || !Number.isInteger(eventsPerLearner) || eventsPerLearner < 1) {
  console.error('--learners must be an integer >= 10 and --events >= 1')
  process.exit(2)
}
const quick = flags.quick ?? false
const ORG = 'bench'
const COURSES = 40
const SECRET = 'analytics-bench-secret-long-enough-for-hs256'
const SYNTHETIC_LEARNERS = quick ? 200_000 : 1_560_000

const log = (line: string) => process.stderr.write(`${line}\n`)
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0
}
async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const started = performance.now()
  const result = await work()
  return { ms: performance.now() - started, result }
}

// ---------------------------------------------------------------- database

async function scratchDatabase(): Promise<{ url: string; release(): Promise<void> }> {
  let adminUrl = process.env.DATABASE_URL
  let stop = async () => {}
  let dir: string | undefined
  if (!adminUrl) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'analytics-bench-'))
    fs.chmodSync(dir, 0o711)
    const server = await openEmbedded(dir)
    adminUrl = server.url
    stop = server.stop
  }
  const name = `analytics_bench_${randomBytes(4).toString('hex')}`
  const admin = createPool(adminUrl, { max: 1 })
  await admin.unsafe(`create database "${name}"`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async release() {
      if (flags.keep && !dir) log(`kept database ${name}`)
      else await admin.unsafe(`drop database if exists "${name}" with (force)`).catch(() => {})
      await admin.end()
      await stop()
      if (dir) fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * One org, 40 courses of 20 lessons in 5 categories; every user learns 4
 * courses and teaches a fifth, and has an admin row: N x 3 user-roles. Events
 * over the last 30 days, more for some learners than others; progress rows
 * derived from them with the write path's own rules.
 */
async function seed(sql: Sql): Promise<{ progressEvents: number; analyticsEvents: number }> {
  await sql`select setseed(0.42)`
  await sql`insert into courses (org_id, course_id, lesson_count, category)
            select ${ORG}, 'course-' || c, 20, (array['math', 'art', 'music', 'code', 'lang'])[1 + c % 5]
            from generate_series(0, ${COURSES - 1}) c`
  await sql`insert into assignments (org_id, user_id, course_id, role)
            select ${ORG}, 'learner-' || u, 'course-' || ((u + k * 7) % ${COURSES}), 'learner'
            from generate_series(1, ${learners}) u, generate_series(0, 3) k`
  await sql`insert into assignments (org_id, user_id, course_id, role)
            select ${ORG}, 'learner-' || u, 'course-' || ((u + 30) % ${COURSES}), 'instructor'
            from generate_series(1, ${learners}) u`
  await sql`insert into learner_analytics (org_id, user_id, role) select ${ORG}, 'learner-' || u, 'admin' from generate_series(1, ${learners}) u`
  // Learner u is active on about (u % 10 + 1) / 10 of its events' days: a spread of habits.
  const [progress] = await sql<{ n: number }[]>`
    with inserted as (
      insert into progress_events (org_id, event_id, occurred_at, user_id, course_id, lesson_id, type, progress,
                                   time_spent_ms, score, clock_skew_ms)
      select ${ORG}, gen_random_uuid(),
             now() - (random() * (u % 10 + 1) * 2.9) * interval '1 day',
             'learner-' || u, 'course-' || ((u + (e % 4) * 7) % ${COURSES}), 'lesson-' || ((e * 7 + u) % 20),
             t.type, case when t.type = 'lesson_progress' then (random() * 100)::int end,
             (random() * 600000)::int, case when t.type = 'lesson_completed' then round((40 + random() * 60)::numeric, 2) end,
             case when e % 5 = 0 then (random() * 2000 - 1000)::int end
      from generate_series(1, ${learners}) u, generate_series(1, ${eventsPerLearner}) e,
           lateral (select (array['lesson_started', 'lesson_progress', 'lesson_progress', 'lesson_completed'])[1 + (e + u) % 4] as type) t
      returning 1)
    select count(*)::int as n from inserted`
  const [analytics] = await sql<{ n: number }[]>`
    with inserted as (
      insert into analytics_events (org_id, event_id, occurred_at, user_id, name, properties)
      select ${ORG}, gen_random_uuid(), now() - (random() * (u % 10 + 1) * 2.9) * interval '1 day', 'learner-' || u, 'page.view', '{}'
      from generate_series(1, ${learners}) u, generate_series(1, ${Math.max(1, Math.floor(eventsPerLearner / 2))}) e
      returning 1)
    select count(*)::int as n from inserted`
  await sql`
    insert into user_lesson_progress (org_id, user_id, course_id, lesson_id, status, progress_pct, best_score, time_spent_ms,
                                      first_event_at, last_event_at, completed_at, event_count)
    select org_id, user_id, course_id, lesson_id,
           max(case type when 'lesson_completed' then 'completed'::lesson_status
                         when 'lesson_progress' then 'in_progress'::lesson_status else 'started'::lesson_status end),
           max(case when type = 'lesson_completed' then 100 else coalesce(progress, 0) end),
           max(score), sum(time_spent_ms), min(occurred_at), max(occurred_at),
           min(occurred_at) filter (where type = 'lesson_completed'), count(*)
    from progress_events group by 1, 2, 3, 4`
  await sql`
    insert into user_course_progress (org_id, user_id, course_id, lessons_started, lessons_completed, time_spent_ms,
                                      started_at, last_activity_at, last_lesson_completed_at)
    select org_id, user_id, course_id, count(*), count(*) filter (where status = 'completed'), sum(time_spent_ms),
           min(first_event_at), max(last_event_at), max(completed_at)
    from user_lesson_progress group by 1, 2, 3`
  await sql`analyze`
  return { progressEvents: progress?.n ?? 0, analyticsEvents: analytics?.n ?? 0 }
}

// ---------------------------------------------------------------- measurements

async function sequentialByRole(sql: Sql, now: Date) {
  const perRole: Record<string, { chunks: number; userRoles: number; ms: number }> = {}
  for (const chunk of await batchChunks(sql)) {
    const { ms } = await timed(() => sql`select refresh_learner_analytics(${chunk.orgId}, ${chunk.role}, ${chunk.userIds}::text[], ${now})`)
    const entry = (perRole[chunk.role] ??= { chunks: 0, userRoles: 0, ms: 0 })
    entry.chunks++
    entry.userRoles += chunk.userIds.length
    entry.ms += ms
  }
  return Object.fromEntries(
    Object.entries(perRole).map(([role, entry]) => [role, { ...entry, ms: Math.round(entry.ms), perUserRoleMs: round(entry.ms / entry.userRoles, 2) }]),
  )
}

async function* syntheticTraits(count: number): AsyncGenerator<Centroid[]> {
  // Four archetypes with noise, in batches of 2000 rows as the cursor yields them.
  const random = seededRandom(1)
  const centres = [[0.8, 0.9, 0.8], [0.2, 0.9, 0.3], [0.05, 0.3, 0.05], [0.4, 0.5, 0.6]]
  for (let start = 0; start < count; start += 2000) {
    const batch: Centroid[] = []
    for (let i = start; i < Math.min(count, start + 2000); i++) {
      const centre = centres[i % 4] as number[]
      const noise = () => (random() - 0.5) * 0.2
      batch.push({
        velocity: Math.min(1, Math.max(0, (centre[0] as number) + noise())),
        affinity: Math.min(1, Math.max(0, (centre[1] as number) + noise())),
        retention: Math.min(1, Math.max(0, (centre[2] as number) + noise())),
      })
    }
    yield batch
  }
}

async function main() {
  const database = await scratchDatabase()
  const sql = createPool(database.url, { max: 8, applicationName: 'analytics-bench' })
  try {
    log(`migrating ${database.url.replace(/\/\/[^@]*@/, '//')}`)
    await migrate(sql, { retentionDays: 30, aheadDays: 7 })
    log(`seeding ${learners} learners x ${eventsPerLearner} events`)
    const seeded = await timed(() => seed(sql))
    log(`seeded in ${Math.round(seeded.ms)} ms: ${JSON.stringify(seeded.result)}`)
    const now = new Date()
    if (flags['seed-only']) {
      log(`batch: ${JSON.stringify(await runDailyBatch(sql, { now }))}`)
      return
    }

    log('daily batch, sequential, timed per role')
    const sequential = await timed(() => sequentialByRole(sql, now))
    const userRoles = learners * 3
    const batches: Record<string, unknown> = {}
    for (const parallel of quick ? [2] : [1, 2, 4]) {
      log(`daily batch, ${parallel} chunk(s) at a time`)
      const run = await runDailyBatch(sql, { now: new Date(), parallel })
      batches[`parallel${parallel}`] = { ...run, userRolesPerSecond: Math.round(run.userRoles / (run.ms / 1000)) }
    }
    const fastest = Math.min(...Object.values(batches).map((run) => (run as { ms: number }).ms))
    const seedPlanMs = 2 * 3600 * 1000

    log('one user-role on demand')
    const onDemand: Record<string, number[]> = { learner: [], instructor: [], admin: [] }
    for (let i = 0; i < (quick ? 10 : 30); i++) {
      for (const role of ['learner', 'instructor', 'admin'] as const) {
        const key = { orgId: ORG, userId: `learner-${1 + ((i * 7919) % learners)}`, role }
        onDemand[role]!.push((await timed(() => recomputeUserRole(sql, key))).ms)
      }
    }

    log('pattern evolution, 52 weeks')
    const evolution: number[] = []
    for (let i = 0; i < (quick ? 50 : 200); i++) {
      evolution.push((await timed(() => patternEvolution(sql, ORG, `learner-${1 + ((i * 104729) % learners)}`, 52, new Date()))).ms)
    }

    log('read path through the API (inject): cache miss, then hit')
    const app = await buildApp({
      config: {
        MAX_BATCH_EVENTS: 100, MAX_BATCH_BYTES: 262144, RETENTION_DAYS: 30, MAX_FUTURE_MS: 86400000, LAG_SLO_MS: 250,
        AUTH_JWT_SECRET: SECRET, DB_POOL_MAX: 4, GROUP_COMMIT: false, LOG_LEVEL: 'silent',
        RATE_LIMIT_BATCHES_PER_SECOND: 5, CORS_ORIGINS: '',
      },
      databaseUrl: database.url,
      edge: { processMetrics: false },
    })
    await app.ready()
    const token = await mintToken(SECRET, { userId: 'root', orgId: ORG, role: 'admin' })
    const miss: number[] = []
    const hit: number[] = []
    const reads = quick ? 200 : 1000
    for (const sample of [miss, hit]) {
      for (let i = 0; i < reads; i++) {
        const url = `/api/v1/analytics/learner/learner-${1 + i}`
        const { ms, result } = await timed(() => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } }))
        if (result.statusCode !== 200 || result.json().status !== 'fresh') throw new Error(`read ${url}: ${result.body.slice(0, 200)}`)
        sample.push(ms)
      }
    }
    await app.close()

    log('cohort discovery for the org')
    const heapBefore = process.memoryUsage().heapUsed
    const cohort = await timed(() => discoverCohorts(sql, ORG))
    // A sum, not a count: a count lets the planner drop the joins that make the traits.
    const traitQuery = await timed(() => sql`select sum(velocity + affinity + retention) from cohort_traits(${ORG}, ${new Date()})`)
    log(`clustering ${SYNTHETIC_LEARNERS} synthetic learners streamed in batches`)
    const synthetic = await timed(async () => {
      const grid = await fillGrid(syntheticTraits(SYNTHETIC_LEARNERS), new TraitGrid())
      return { grid, clusters: clusterGrid(grid) }
    })
    const heapAfter = process.memoryUsage().heapUsed

    const results = {
      benchmark: 'learner-analytics',
      at: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
      dataset: { learners, userRoles, courses: COURSES, ...seeded.result, seedMs: Math.round(seeded.ms) },
      dailyBatch: {
        sequentialByRole: sequential.result,
        sequentialMs: Math.round(sequential.ms),
        ...batches,
        fastestMs: fastest,
        seedPlanMs,
        speedupVsSeedPlan: Math.round(seedPlanMs / fastest),
      },
      onDemandRecomputeMs: Object.fromEntries(
        Object.entries(onDemand).map(([role, ms]) => [role, { p50: round(percentile(ms, 50)), p95: round(percentile(ms, 95)), samples: ms.length }]),
      ),
      patternEvolution52wMs: { p50: round(percentile(evolution, 50)), p95: round(percentile(evolution, 95)), samples: evolution.length },
      readPathMs: {
        cacheMiss: { p50: round(percentile(miss, 50), 2), p95: round(percentile(miss, 95), 2) },
        cacheHit: { p50: round(percentile(hit, 50), 2), p95: round(percentile(hit, 95), 2) },
        samples: reads,
      },
      cohorts: {
        method: COHORT_METHOD,
        org: {
          learners: cohort.result.learners,
          k: cohort.result.k,
          silhouette: round(cohort.result.silhouette, 3),
          ms: Math.round(cohort.ms),
          learnersPerMinute: Math.round((cohort.result.learners / cohort.ms) * 60000),
          traitQueryMs: Math.round(traitQuery.ms),
        },
        synthetic: {
          learners: SYNTHETIC_LEARNERS,
          cells: synthetic.result.grid.cells,
          k: synthetic.result.clusters.centroids.length,
          ms: Math.round(synthetic.ms),
          learnersPerMinute: Math.round((SYNTHETIC_LEARNERS / synthetic.ms) * 60000),
          seedLearnersPerMinute: 1_560_000,
        },
        heapGrowthMb: round((heapAfter - heapBefore) / 1048576),
      },
    }
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`)
  } finally {
    await sql.end({ timeout: 5 })
    await database.release()
  }
}

await main()
