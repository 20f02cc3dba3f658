// Scenario 7: the database restarts under load. The API answers 503 (or the
// client sees a failed connection) while it is down and recovers by itself,
// without a restart of its own; clients resend, and the database ends up with
// exactly the unique events sent. Uses a private PostgreSQL server, never the
// one the other tests share.
import t from 'tap'
import { createPool } from '../../src/db/pool.ts'
import {
  ApiProcess, checkExactlyOnce, learnerTokens, LoadStats, planBatches, PrivateDatabase, randomProgressEvent, reportFigures, runLearners,
  seedLearners, sized, sleep, waitFor, type Learner, type PlannedEvent,
} from './support.ts'

const size = sized({
  ci: { learners: 30, batches: 12, restarts: 1, downMs: 1500 },
  full: { learners: 200, batches: 40, restarts: 3, downMs: 4000 },
})
const EVENTS_PER_BATCH = 10
const LESSONS = 8
/**
 * A client gives up on an attempt after this long. While the database is down
 * the API must answer (503) well within it, and once the database is back it
 * must recover by itself well within it: a request left hanging is a failure.
 */
const CLIENT_TIMEOUT_MS = 10000

/**
 * Milliseconds until one fresh event is acknowledged (the database is usable
 * again). The same event is resent until then, so it is stored exactly once
 * even when an attempt that timed out was written after all.
 */
async function timeToFirstWrite(baseUrl: string, token: string, userId: string, written: PlannedEvent[]): Promise<number> {
  const started = Date.now()
  const event = randomProgressEvent(userId, 'course-1', LESSONS)
  written.push(event)
  await waitFor(
    'a write to succeed after the restart',
    async () => {
      try {
        const response = await fetch(`${baseUrl}/api/client/progress/batch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ events: [event] }),
          signal: AbortSignal.timeout(1000),
        })
        await response.arrayBuffer()
        return response.status === 200
      } catch {
        return false
      }
    },
    60000,
    100,
  )
  return Date.now() - started
}

t.test('database restart under load: 503s, recovery without an API restart, exactly once', async (t) => {
  const database = await PrivateDatabase.start(t)
  const sql = createPool(database.url, { max: 2 })
  t.teardown(() => sql.end({ timeout: 5 }))
  const userIds = await seedLearners(sql, { orgId: 'org-restart', learners: size.learners, courses: 1, lessonCount: LESSONS })
  const tokens = await learnerTokens(userIds)
  const learners: Learner[] = userIds.map((userId, i) => ({
    token: tokens[i]!,
    batches: planBatches(userId, { batches: size.batches, eventsPerBatch: EVENTS_PER_BATCH, courseId: 'course-1', lessons: LESSONS }),
  }))
  const totalBatches = size.learners * size.batches

  const api = await ApiProcess.start(t, { databaseUrl: database.url })
  const pid = api.pid
  const stats = new LoadStats()
  const started = Date.now()
  const load = runLearners(learners, { baseUrl: api.url, stats, timeoutMs: CLIENT_TIMEOUT_MS, deadline: started + sized({ ci: 50000, full: 300000 }) })
  const probeWrites: PlannedEvent[] = []

  const outages: { stopMs: number; downMs: number; startMs: number; firstWriteAfterMs: number }[] = []
  const healthDuringOutage: number[] = []
  for (let restart = 1; restart <= size.restarts; restart++) {
    await waitFor(`${restart}/${size.restarts + 1} of the batches acknowledged`, () => stats.acknowledged >= (totalBatches * restart) / (size.restarts + 1), 60000, 5)
    const stopping = Date.now()
    await database.stop()
    const stopped = Date.now()
    await sleep(size.downMs / 2)
    healthDuringOutage.push((await fetch(`${api.url}/api/health`, { signal: AbortSignal.timeout(10000) })).status)
    await sleep(size.downMs / 2)
    const starting = Date.now()
    await database.start()
    const startMs = Date.now() - starting
    const firstWriteAfterMs = await timeToFirstWrite(api.url, tokens[0]!, userIds[0]!, probeWrites)
    outages.push({ stopMs: stopped - stopping, downMs: starting - stopped, startMs, firstWriteAfterMs })
  }
  const { misaccounted } = await load
  const seconds = (Date.now() - started) / 1000

  t.equal(api.pid, pid, 'the API process was never restarted')
  t.equal(api.starts, 1, 'the API was started once')
  t.same([...new Set(healthDuringOutage)], [503], '/api/health answers 503 while the database is down')
  t.equal((await fetch(`${api.url}/api/health`)).status, 200, '/api/health answers 200 again afterwards')
  t.equal(stats.acknowledged, totalBatches, 'every batch was eventually acknowledged')
  t.equal(misaccounted.length, 0, `every 200 accounts for each event once (${misaccounted[0] ?? 'ok'})`)
  t.ok(stats.status(503) > 0, 'the outage was answered with 503s')
  t.equal(stats.timeouts, 0, `no request was left hanging until the client gave up (${CLIENT_TIMEOUT_MS} ms)`)
  t.equal(stats.missingRetryAfter, 0, 'every 503 carries Retry-After')
  if (!t.equal(stats.unexpected5xx, 0, 'no 5xx other than 503')) t.comment(api.output)
  t.same(stats.malformedErrors, [], 'every error answer has the coded body')
  t.equal(stats.missingLagHeader, 0, 'every answer carries X-Client-Queue-Lag')
  const report = await checkExactlyOnce(t, sql, [...learners.flatMap((learner) => learner.batches.flat()), ...probeWrites])

  reportFigures(t, 'db-restart', {
    learners: size.learners,
    batches: totalBatches,
    eventsSent: totalBatches * EVENTS_PER_BATCH,
    uniqueEvents: report.expected,
    stored: report.stored,
    missing: report.missing,
    restarts: outages,
    seconds: Math.round(seconds * 10) / 10,
    ...stats.summary(),
  })
})
