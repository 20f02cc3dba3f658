// Real worker processes against a test database: two at once run each
// scheduled occurrence once, and a worker killed (SIGKILL) in the middle of a
// rollup leaves rollups that another worker's retry of the job completes exactly.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { ensureSchedules, startBoss } from '../../src/jobs/boss.ts'
import { coreJobs } from '../../src/workers/core-jobs.ts'
import { jobs } from '../../src/workers/registry.ts'
import { seedOrg, startClearOf, testDatabase, testPool } from '../helper.ts'
import { eventually, ingestProgress, recomputedRollups, rollupTables, scratchDir, spawnWorker, workerConfig, workerWithHeldRollup } from './support.ts'

// Past tap's 180 s: the first test may wait a minute clear of a cron occurrence.
t.setTimeout(360_000)

t.test('two workers at once: every scheduled occurrence runs once', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const snapshots = scratchDir(t)
  const config = workerConfig(url, { SNAPSHOT_DIR: snapshots })
  // Queues and schedules exist, and the last cron pass was a day ago: each
  // schedule has a missed occurrence that the first pass of either worker owes.
  const setup = await startBoss({ url, definitions: jobs, role: 'producer' })
  await ensureSchedules(setup, jobs, config)
  await setup.stop({ graceful: false })
  // (pg-boss owes nothing for the time before a schedule existed, so it was created then too.)
  await sql`update pgboss.version set cron_on = now() - interval '25 hours'`
  await sql`update pgboss.schedule set created_on = now() - interval '25 hours'`
  // Asserted on this feature's own schedules (the analytics ones are scheduled and run too).
  const scheduled = coreJobs.filter((definition) => definition.cron?.(config)).map((definition) => definition.name)

  // A schedule owes one job for the missed occurrence and, when the first pass
  // runs within a minute of one (rollup and replay every 5 minutes), a second
  // for the occurrence due now. One coming due while the test reads its jobs
  // (10 s, up to a minute on a loaded machine) would make them a moving target.
  await startClearOf(300_000, 60_000)

  const env = { SNAPSHOT_DIR: snapshots, DATA_DIR: scratchDir(t) }
  const workers = [spawnWorker(t, url, env), spawnWorker(t, url, env)]
  await Promise.all(workers.map((worker) => worker.waitFor(/worker ready/)))

  // The cron pass forwards each occurrence through pg-boss's send-it queue,
  // filed under the minute it falls in (its slot); a worker then sends its job.
  type JobRow = { name: string; id: string; state: string; slot: string | null }
  const readJobs = () => sql<JobRow[]>`
    select name, id::text, state::text, null as slot from pgboss.job where name = any (${scheduled})
    union all
    select data->>'name', id::text, state::text, data->>'slot' from pgboss.job
    where name = '__pgboss__send-it' and data->>'name' = any (${scheduled})`
  const settled = await eventually(async () => {
    const rows = await readJobs()
    const names = new Set(rows.map((row) => row.name))
    const busy = rows.some((row) => row.state !== 'completed')
    return scheduled.every((name) => names.has(name)) && !busy ? rows : undefined
  }, 45000, 'a completed job of every schedule').catch(async (error) => {
    t.comment(JSON.stringify(await sql`select name, state::text, output from pgboss.job`))
    t.comment(workers[0]!.output().slice(-3000))
    throw error
  })
  // Both workers poll every 2 s: give a duplicate every chance to show up.
  await new Promise((resolve) => setTimeout(resolve, 4000))

  const rowsNow = await readJobs()
  t.equal(rowsNow.length, settled.length, 'no further jobs appeared')
  const jobsNow = rowsNow.filter((row) => row.slot === null)
  for (const name of scheduled) {
    const slots = rowsNow.filter((row) => row.name === name && row.slot !== null).map((row) => row.slot)
    t.equal(new Set(slots).size, slots.length, `${name}: each occurrence forwarded once (${slots.length} occurrence(s))`)
    // A stately queue drops an occurrence sent while the last one's job still waits.
    const jobs = jobsNow.filter((row) => row.name === name).length
    t.ok(jobs >= 1 && jobs <= slots.length, `${name}: ${jobs} job(s), at most one per occurrence`)
  }
  const runs = await sql<{ job: string; job_id: string; n: number }[]>`
    select job, summary->>'jobId' as job_id, count(*)::int as n from worker_runs
    where summary ? 'jobId' group by 1, 2`
  for (const row of jobsNow) {
    const run = runs.find((r) => r.job_id === row.id)
    t.equal(run?.n, 1, `${row.name} job ${row.id.slice(0, 8)} ran exactly once`)
  }
  const [startRuns] = await sql<{ n: number }[]>`select count(*)::int as n from worker_runs where job = 'partitions' and not summary ? 'jobId'`
  t.equal(startRuns!.n, 2, 'each worker ran partition upkeep at start')

  // SIGTERM: both stop cleanly.
  for (const worker of workers) worker.child.kill('SIGTERM')
  t.same(await Promise.all(workers.map((worker) => worker.exited)), [0, 0])
})

t.test('a worker killed mid-rollup: another worker retries its job within 45 s, and the rollups come out exact', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const orgs = ['org-1', 'org-2', 'org-3', 'org-4', 'org-5', 'org-6']
  const learners = ['u1', 'u2', 'u3', 'u4']
  for (const org of orgs) await seedOrg(sql, org, [{ courseId: 'c1', lessonCount: 3 }], learners)
  const base = Math.floor(Date.now() / 3600000) * 3600000
  for (const org of orgs) {
    for (let batch = 0; batch < 5; batch++) {
      await ingestProgress(sql, learners.map((user, i) => ({
        event_id: randomUUID(), occurred_at: new Date(base - (batch * 5 + i) * 3600000).toISOString(), user_id: user,
        course_id: 'c1', lesson_id: `l${i}`, type: 'lesson_progress' as const, time_spent_ms: 100 * batch + i, org_hint: org,
      })))
    }
  }
  // The worker's run gets past the other orgs and blocks on org-4's row.
  const { worker, holder, jobId } = await workerWithHeldRollup(t, sql, url, 'org-4')
  await eventually(async () => {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from rollup_org_state where xid_high > '0'`
    return row!.n === orgs.length - 1 ? true : undefined
  }, 30000, 'every org but the held one rolled up')

  worker.child.kill('SIGKILL')
  const killedAt = Date.now()
  await worker.exited
  const [mark] = await sql<{ low: string }[]>`select xid_low::text as low from rollup_state`
  t.equal(mark!.low, '0', 'the killed run never moved the global mark')
  const partial = await rollupTables(sql, 'org-4')
  t.same(partial.counters, [], 'the held org was not rolled up before the kill')
  await holder`rollback`

  // The job is pg-boss's to retry: its heartbeat stops, a supervise pass of
  // the other worker fails it (30 s heartbeat, a pass every 10 s), and after
  // the retry delay a worker runs it again.
  const other = spawnWorker(t, url, { SNAPSHOT_DIR: scratchDir(t) })
  const retried = await eventually(async () => {
    const [row] = await sql<{ state: string; retry_count: number }[]>`
      select state, retry_count from pgboss.job where name = 'rollup' and id = ${jobId}`
    return row?.state === 'completed' ? row : undefined
  }, 90000, "the killed worker's job to be retried and completed")
  const seconds = (Date.now() - killedAt) / 1000
  t.equal(retried.retry_count, 1, 'completed by its retry')
  t.ok(seconds < 60, `retried and completed ${seconds.toFixed(0)} s after the kill (about 45 s at most; pg-boss's default supervise pass made it 65 to 80)`)
  t.same(await rollupTables(sql), await recomputedRollups(sql), 'rollups equal a from-scratch recompute')
  const [after] = await sql<{ low: string }[]>`select xid_low::text as low from rollup_state`
  t.not(after!.low, '0', 'the completing run moved the global mark')
  other.child.kill('SIGTERM')
  t.equal(await other.exited, 0)
})
