import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import t from 'tap'
import { runJob } from '../../src/jobs/runner.ts'
import { partitionsJob } from '../../src/workers/partitions.ts'
import { build, startClearOfMidnight } from '../helper.ts'
import { jobContext, scratchDir, spawnWorker, workerConfig } from './support.ts'

const DAY = 86400000
const dayString = (offset: number) => new Date(Math.floor(Date.now() / DAY) * DAY + offset * DAY).toISOString().slice(0, 10)
const compact = (day: string) => day.replaceAll('-', '')

t.test('partition upkeep keeps RETENTION_DAYS back to PARTITIONS_AHEAD_DAYS ahead, and health shows it', async (t) => {
  await startClearOfMidnight()
  const h = await build(t)
  const health = async () => (await h.app.inject({ method: 'GET', url: '/api/health' })).json()
  t.equal((await health()).workers.lastRunAt, null, 'no worker has run yet')
  await h.sql.unsafe(`drop table progress_events_p${compact(dayString(3))}, analytics_events_p${compact(dayString(5))}`)

  const result = await runJob(partitionsJob, {}, jobContext(h.sql, workerConfig(h.url, { RETENTION_DAYS: '30', PARTITIONS_AHEAD_DAYS: '9' })))
  t.match(result, {
    created: [`progress_events_p${compact(dayString(3))}`, `progress_events_p${compact(dayString(8))}`, `progress_events_p${compact(dayString(9))}`,
      `analytics_events_p${compact(dayString(5))}`, `analytics_events_p${compact(dayString(8))}`, `analytics_events_p${compact(dayString(9))}`],
    from: dayString(-30),
    to: dayString(9),
  })
  const body = await health()
  t.same(body.partitions, { from: dayString(-30), to: dayString(9) })
  t.ok(Date.now() - Date.parse(body.workers.lastRunAt) < 60000, 'workers.lastRunAt is the run just recorded')
})

t.test('a worker process makes missing partitions at start', async (t) => {
  const h = await build(t)
  const missing = `progress_events_p${compact(dayString(1))}`
  await h.sql.unsafe(`drop table ${missing}`)
  const worker = spawnWorker(t, h.url, { SNAPSHOT_DIR: scratchDir(t) })
  await worker.waitFor(/worker ready/)
  const [row] = await h.sql<{ ok: boolean }[]>`select to_regclass(${missing}) is not null as ok`
  t.ok(row!.ok, `${missing} exists again`)
  const [run] = await h.sql`select job, summary from worker_runs order by id limit 1`
  t.match(run, { job: 'partitions', summary: { created: [missing] } })
  worker.child.kill('SIGTERM')
  t.equal(await worker.exited, 0, 'SIGTERM stops the worker cleanly')
})

t.test('npm run partitions on a new embedded database reports the partitions it made', async (t) => {
  await startClearOfMidnight()
  // Starting the embedded server migrates it; were the partitions made then,
  // the run would report none created.
  const dataDir = scratchDir(t, 'partitions-script-')
  fs.chmodSync(dataDir, 0o711)
  const { DATABASE_URL: _ignored, ...env } = process.env
  const run = spawnSync(process.execPath, [new URL('../../scripts/partitions.ts', import.meta.url).pathname], {
    env: { ...env, DATA_DIR: dataDir, RETENTION_DAYS: '3', PARTITIONS_AHEAD_DAYS: '2' },
    encoding: 'utf8',
    timeout: 60_000,
  })
  t.equal(run.status, 0, run.stderr)
  // 3 days back, today, 2 ahead: 6 days of each of the two event tables
  t.equal(run.stdout.trim(), `partitions: 12 created; daily partitions cover ${dayString(-3)} to ${dayString(2)}`)
})
