// npm run start:worker: one worker process. Any number may run at once: pg-boss
// hands each queued job to one of them and files each cron occurrence once;
// jobs that must not overlap themselves also take an advisory lock (see the
// job modules). On SIGTERM running handlers stop between bounded chunks, then
// the process waits for them before closing its connections.
import pino from 'pino'
import { loadConfigOrExit } from '../config.ts'
import { exitAtStart, locateDatabase, startFailure } from '../db/database.ts'
import { createPool } from '../db/pool.ts'
import { readySchemaOrExit } from '../db/ready.ts'
import { startBoss } from '../jobs/boss.ts'
import type { JobContext, JobDefinition } from '../jobs/definition.ts'
import { recordRun, runJob } from '../jobs/runner.ts'
import { onShutdownSignal } from '../shutdown.ts'
import { partitionsJob } from './partitions.ts'
import { jobs } from './registry.ts'

/** How long SIGTERM waits for running jobs after asking them to stop. */
const STOP_TIMEOUT_MS = 30000

const config = loadConfigOrExit({ tokens: false })
const log = pino({ level: config.LOG_LEVEL, base: { process: 'worker', pid: process.pid } })
const database = await locateDatabase(config, (line) => log.info(line))
const sql = createPool(database.url, { max: config.DB_POOL_MAX, applicationName: 'learning-events-worker' })
// Production migrates in the release step; a lone embedded worker does it itself.
await readySchemaOrExit(sql, database, config)
const stopping = new AbortController()

function contextFor(definition: JobDefinition, jobId: string | undefined, jobSignal?: AbortSignal): JobContext {
  return {
    sql,
    config,
    log: log.child({ job: definition.name, ...(jobId ? { jobId } : {}) }),
    signal: jobSignal ? AbortSignal.any([stopping.signal, jobSignal]) : stopping.signal,
    ...(jobId ? { jobId } : {}),
  }
}

// The rest of the start needs the database as much as the schema check did,
// and can be refused where that was not: pg-boss opens connections of its own
// (a role's CONNECTION LIMIT), the partition run writes (a role that may only
// read). Either stops the worker as the check would, in one line, exit code 1.
async function start() {
  // Before anything else: writes must never find their day's partition missing.
  await runJob(partitionsJob, { trigger: 'start' }, contextFor(partitionsJob, undefined))
  return startBoss({
    url: database.url,
    definitions: jobs,
    role: 'worker',
    config,
    onError: (error, occurrences) => log.warn({ err: error, occurrences }, 'job queue error'),
  })
}
const boss = await start().catch((error: unknown) => exitAtStart(database, startFailure(database, error, 'the worker'), () => sql.end({ timeout: 1 })))
// The jobs running now, by id: those still running when the stop wait is over
// are said and recorded, since they cannot record themselves any more.
const running = new Map<string, { job: string; startedAt: Date }>()
for (const definition of jobs) {
  await boss.work<object>(definition.name, { localConcurrency: definition.concurrency ?? 1, pollingIntervalSeconds: 2 }, async ([job]) => {
    if (!job) return {}
    const context = contextFor(definition, job.id, job.signal)
    context.log.info('job started')
    running.set(job.id, { job: definition.name, startedAt: new Date() })
    try {
      const result = await runJob(definition, job.data ?? {}, context)
      context.log.info({ result }, 'job finished')
      return result
    } catch (error) {
      context.log.error({ err: error }, 'job failed')
      throw error
    } finally {
      running.delete(job.id)
    }
  })
}
log.info({ queues: jobs.map((definition) => definition.name) }, 'worker ready')

onShutdownSignal(async (signal) => {
  log.info({ signal }, 'worker stopping')
  stopping.abort()
  await boss.stop({ graceful: true, timeout: STOP_TIMEOUT_MS })
  for (const [jobId, { job, startedAt }] of running) {
    // pg-boss has failed it as it stopped, so the queue retries it; its
    // handler, stuck (on a lock, say), is cut off when the pool closes.
    log.warn({ job, jobId }, `job still running after the ${STOP_TIMEOUT_MS / 1000} s stop wait: cut off, to be retried`)
    await recordRun(sql, job, startedAt, { jobId, error: `cut off: still running ${STOP_TIMEOUT_MS / 1000} s after the worker was asked to stop` }).catch(() => {})
  }
  await sql.end({ timeout: 5 })
  await database.release()
})

// Started by `npm start` (src/main.ts) with an IPC channel: that process gone
// (even before this worker was ready), stop as on SIGTERM.
const stopWithParent = () => {
  if (!stopping.signal.aborted) process.kill(process.pid, 'SIGTERM')
}
if (process.send) {
  if (process.connected) process.once('disconnect', stopWithParent)
  else stopWithParent()
}
