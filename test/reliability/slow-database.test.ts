// Scenario 8: a slow database. Another connection repeatedly holds a SHARE
// lock on progress_events (as a long maintenance transaction would), so every
// ingestion call waits up to a lock period. The API must say so: the
// X-Client-Queue-Lag advice rises and clients that obey it slow down; work
// past the in-flight bound is refused at once with 503 + Retry-After rather
// than queued until clients time out; nothing is lost; the advice returns to 0
// once the database is fast again.
import t from 'tap'
import type { Sql } from '../../src/db/pool.ts'
import { testDatabase, testPool } from '../helper.ts'
import {
  ApiProcess, checkExactlyOnce, inFlightBound, learnerTokens, LoadStats, randomProgressEvent, reportFigures, RetryingClient, seedLearners, sized, sleep,
  waitFor, type PlannedEvent,
} from './support.ts'

const size = sized({
  ci: { learners: 40, baselineMs: 2000, slowMs: 6000 },
  full: { learners: 80, baselineMs: 10000, slowMs: 45000 },
})
const EVENTS_PER_BATCH = 10
const LESSONS = 8
/** Each learner flushes this often (plus any lag advice), like the browser SDK. */
const FLUSH_INTERVAL_MS = 500
const LOCK_HOLD_MS = 1500
const LOCK_GAP_MS = 100
/** A client gives up on an attempt after this long; the API must answer well before. */
const CLIENT_TIMEOUT_MS = 10000
/** A small pool keeps the in-flight bound (a multiple of the pool size) low. */
const POOL_MAX = 2
/**
 * Learners per unit of the in-flight bound an idle API publishes (its burst
 * bound, the most it admits): while the lock is held every learner has a batch
 * waiting, so some must be refused.
 */
const LEARNERS_PER_SLOT = 1.25


/** Holds a SHARE lock on progress_events (inserts wait) most of the time, until stopped. */
function lockHolder(sql: Sql): { stop(): Promise<number> } {
  let running = true
  let cycles = 0
  const loop = (async () => {
    while (running) {
      await sql.begin(async (tx) => {
        await tx`lock table progress_events in share mode`
        await tx`select pg_sleep(${LOCK_HOLD_MS / 1000})`
      })
      cycles++
      await sleep(LOCK_GAP_MS)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return cycles
    },
  }
}

t.test('slow database: lag advice rises, 503 instead of timeouts, nothing lost', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const api = await ApiProcess.start(t, { databaseUrl: url, env: { DB_POOL_MAX: String(POOL_MAX), LAG_SLO_MS: '250' } })
  // More learners than the bound, so that a slow database must lead to 503s.
  const bound = await inFlightBound(api.url)
  const learnerCount = Math.max(size.learners, Math.ceil((bound ?? 0) * LEARNERS_PER_SLOT))
  t.ok(bound !== undefined && learnerCount > bound, `${learnerCount} learners exceed the in-flight bound (${bound})`)
  const userIds = await seedLearners(sql, { orgId: 'org-slow', learners: learnerCount, courses: 1, lessonCount: LESSONS })
  const tokens = await learnerTokens(userIds)

  // Each learner sends a batch every FLUSH_INTERVAL_MS until told to stop,
  // honouring the lag advice. Every attempt counts in the phase it was made in.
  const phases: Record<'baseline' | 'slow' | 'recovery', LoadStats> = { baseline: new LoadStats(), slow: new LoadStats(), recovery: new LoadStats() }
  let phase: keyof typeof phases = 'baseline'
  const enter = (next: keyof typeof phases) => {
    phases[phase].end()
    phases[next] = new LoadStats()
    phase = next
  }
  let sending = true
  const sent: PlannedEvent[] = []
  const deadline = Date.now() + size.baselineMs + size.slowMs + 60000
  const learners = userIds.map(async (userId, i) => {
    await sleep(Math.random() * FLUSH_INTERVAL_MS) // learners do not flush in step
    let previous: PlannedEvent[] = []
    while (sending) {
      const batch = previous.length > 0 ? [previous[0]!] : [] // a resend, as after a lost response
      while (batch.length < EVENTS_PER_BATCH) batch.push(randomProgressEvent(userId, 'course-1', LESSONS))
      sent.push(...batch)
      const client = new RetryingClient({ baseUrl: api.url, token: tokens[i]!, stats: () => phases[phase], deadline, timeoutMs: CLIENT_TIMEOUT_MS, honourLag: true })
      await client.send({ events: batch })
      previous = batch
      await sleep(FLUSH_INTERVAL_MS)
    }
  })

  await sleep(size.baselineMs)
  enter('slow')
  const locker = lockHolder(testPool(t, url, 1))
  await sleep(size.slowMs)
  const lockCycles = await locker.stop()
  enter('recovery')
  // The advice decays once calls are fast again; a probe request reads it.
  const probe = await learnerTokens(['learner-1'])
  let recoveredAfterMs = 0
  const recoveryStarted = Date.now()
  await waitFor(
    'the lag advice to return to 0',
    async () => {
      const response = await fetch(`${api.url}/api/client/progress/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${probe[0]}` },
        body: JSON.stringify({ events: [] }),
      })
      await response.arrayBuffer()
      recoveredAfterMs = Date.now() - recoveryStarted
      return response.headers.get('x-client-queue-lag') === '0'
    },
    45000,
    250,
  )
  await sleep(1000)
  sending = false
  await Promise.all(learners)
  phases.recovery.end()

  const { baseline, slow, recovery } = phases
  t.ok(slow.maxLagMs > 0, `the lag advice rose while it was slow (max ${slow.maxLagMs} ms)`)
  t.ok(slow.lagWaitMs > 0, 'clients slowed down as advised')
  t.ok(slow.status(503) > 0, 'work past the in-flight bound was refused with 503')
  for (const [name, stats] of Object.entries(phases)) {
    t.equal(stats.timeouts, 0, `${name}: no client timed out (${CLIENT_TIMEOUT_MS} ms)`)
    t.equal(stats.connectionErrors, 0, `${name}: no connection failed`)
    t.equal(stats.unexpected5xx, 0, `${name}: no 5xx other than 503`)
    t.equal(stats.missingRetryAfter, 0, `${name}: every 503 carries Retry-After`)
    t.equal(stats.missingLagHeader, 0, `${name}: every ingestion answer carries X-Client-Queue-Lag`)
    t.same(stats.malformedErrors, [], `${name}: every error answer has the coded body`)
  }
  const report = await checkExactlyOnce(t, sql, sent)

  const figures = (stats: LoadStats) => {
    const { statuses, errorCodes, okPerSecond, okP50Ms, okP95Ms, refusedP95Ms, maxLagMs, lagWaitMs, timeouts, seconds } = stats.summary()
    return { seconds, statuses, errorCodes, okPerSecond, okP50Ms, okP95Ms, refusedP95Ms, maxLagMs, lagWaitMs, timeouts }
  }
  reportFigures(t, 'slow-database', {
    learners: learnerCount,
    inFlightBound: bound,
    lock: { holdMs: LOCK_HOLD_MS, gapMs: LOCK_GAP_MS, cycles: lockCycles },
    baseline: figures(baseline),
    slow: figures(slow),
    recovery: figures(recovery),
    lagBackToZeroAfterMs: recoveredAfterMs,
    uniqueEvents: report.expected,
    stored: report.stored,
    missing: report.missing,
  })
})
