import t from 'tap'
import { build } from '../helper.ts'
import { eventually, scratchDir, spawnWorker } from './support.ts'

t.test('app.jobs sends and reads jobs; the API process runs no workers and no schedules', async (t) => {
  const h = await build(t)
  const jobId = await h.app.jobs.send('rollup', { reason: 'test' })
  t.match(jobId, /^[0-9a-f]{8}-[0-9a-f]{4}-/)
  t.match(await h.app.jobs.get('rollup', jobId), { id: jobId, name: 'rollup', state: 'created', startedAt: null, completedAt: null, data: { reason: 'test' } })
  t.match(await h.app.jobs.find(jobId), { name: 'rollup' }, 'found by id alone')
  t.equal(await h.app.jobs.get('rollup', '00000000-0000-4000-8000-000000000000'), null)
  t.equal(await h.app.jobs.get('rollup', 'not-a-uuid'), null)
  t.equal(await h.app.jobs.get('no-such-queue', jobId), null)
  await t.rejects(h.app.jobs.send('no-such-queue', {}), /no job definition/)

  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.match(await h.app.jobs.get('rollup', jobId), { state: 'created' }, 'nothing in the API process ran it')
  const [schedules] = await h.sql<{ n: number }[]>`select count(*)::int as n from pgboss.schedule`
  t.equal(schedules!.n, 0, 'nor scheduled anything')

  // A failing job reports its error; a worker process runs both.
  const failing = await h.app.jobs.send('erase-learner', { userId: 'nobody' }, { retryLimit: 0 })
  const worker = spawnWorker(t, h.url, { SNAPSHOT_DIR: scratchDir(t) })
  const done = await eventually(async () => {
    const status = await h.app.jobs.get('rollup', jobId)
    return status?.state === 'completed' ? status : undefined
  }, 60_000, 'the rollup job')
  t.match(done, { output: { complete: true } })
  t.ok(done.startedAt && done.completedAt && done.startedAt <= done.completedAt)
  const failed = await eventually(async () => {
    const status = await h.app.jobs.get('erase-learner', failing)
    return status?.state === 'failed' ? status : undefined
  }, 60_000, 'the failing job')
  t.match(failed, { error: /reading 'userId'/, output: null }, 'a handler error is the job\'s error')
  worker.child.kill('SIGTERM')
  await worker.exited
})
