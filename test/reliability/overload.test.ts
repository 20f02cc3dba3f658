// Scenario 10: overload far past the target (500 batches/s of 10 events).
// Many concurrent senders post fresh batches as fast as they can, without
// retrying, for a bounded time. Shedding (503 + Retry-After, refused quickly)
// must keep the accepted requests' latency bounded and the API's memory flat;
// every acknowledged event is stored and nothing from a refused batch is.
import http from 'node:http'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import t from 'tap'
import { testDatabase, testPool } from '../helper.ts'
import {
  ApiProcess, inFlightBound, isCodedError, learnerTokens, mb, percentile, postJson, randomProgressEvent, reportFigures, round, RssSampler, SCALE, seedLearners,
  sized,
  type PlainResponse,
} from './support.ts'

const TARGET_BATCHES_PER_SECOND = 500
const size = sized({
  ci: { learners: 500, concurrency: 200, seconds: 6 },
  full: { learners: 5000, concurrency: 400, seconds: 60 },
})
const EVENTS_PER_BATCH = 10
const LESSONS = 8
const CLIENT_TIMEOUT_MS = 10000
// Generous on purpose: a shared 2-core machine runs the API, PostgreSQL and
// this load generator at once. Without shedding, latency grows with the queue.
const OK_P95_BOUND_MS = sized({ ci: 5000, full: 3000 })
/** RSS may grow by this much (or 25 %) in the second half of a full run. */
const RSS_SECOND_HALF_GROWTH_MB = 64
/** A hard ceiling for any run: far above the API's steady state, far below the machine. */
const RSS_CEILING_MB = 1024

/**
 * Senders per unit of the in-flight bound an idle API publishes (its burst
 * bound, the most it admits): overload means more work than it admits.
 */
const SENDERS_PER_SLOT = 1.25

t.test(`overload: concurrent senders for ${size.seconds} s`, async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const userIds = await seedLearners(sql, { orgId: 'org-overload', learners: size.learners, courses: 1, lessonCount: LESSONS })
  const tokens = await learnerTokens(userIds)
  const api = await ApiProcess.start(t, { databaseUrl: url })
  const bound = await inFlightBound(api.url)
  const concurrency = Math.max(size.concurrency, Math.ceil((bound ?? 0) * SENDERS_PER_SLOT))
  t.ok(bound !== undefined && concurrency > bound, `${concurrency} senders exceed the in-flight bound (${bound})`)

  const statuses = new Map<string, number>()
  const okLatencies: number[] = []
  const refusedLatencies: number[] = []
  const acknowledged = new Set<string>()
  const refused = new Set<string>()
  const problems: string[] = []
  let requests = 0
  let failures = 0
  const note = (problem: string) => problems.length < 5 && problems.push(problem)

  const rss = new RssSampler(() => api.rssBytes(), 250)
  // The load generator shares the machine: its own event-loop delay shows when
  // it, rather than the API, is the bottleneck (client-side latency then includes it).
  const driverDelay = monitorEventLoopDelay({ resolution: 20 })
  driverDelay.enable()
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  t.teardown(() => agent.destroy())
  const batchUrl = `${api.url}/api/client/progress/batch`
  const started = performance.now()
  const until = started + size.seconds * 1000
  const sender = async (worker: number) => {
    for (let n = 0; performance.now() < until; n++) {
      const learner = (worker + n * concurrency) % userIds.length
      const events = Array.from({ length: EVENTS_PER_BATCH }, () => randomProgressEvent(userIds[learner]!, 'course-1', LESSONS))
      const sentAt = performance.now()
      requests++
      let response: PlainResponse
      try {
        response = await postJson(agent, batchUrl, { authorization: `Bearer ${tokens[learner]}` }, JSON.stringify({ events }), CLIENT_TIMEOUT_MS)
      } catch (error) {
        failures++
        note(`request failed: ${(error as Error).name} ${(error as Error).message}`)
        continue
      }
      const latency = performance.now() - sentAt
      const { text } = response
      const body = JSON.parse(text) as { accepted?: number; code?: string }
      const key = response.status === 200 ? '200' : `${response.status} ${body.code}`
      statuses.set(key, (statuses.get(key) ?? 0) + 1)
      if (response.status === 200) {
        okLatencies.push(latency)
        if (body.accepted !== EVENTS_PER_BATCH) note(`a 200 accepted ${body.accepted} of ${EVENTS_PER_BATCH} fresh events`)
        for (const event of events) acknowledged.add(event.eventId)
        continue
      }
      for (const event of events) refused.add(event.eventId)
      if (!isCodedError(body, response.status)) note(`uncoded ${response.status}: ${text.slice(0, 200)}`)
      if (response.status === 503 || response.status === 429) {
        refusedLatencies.push(latency)
        if (!response.headers['retry-after']) note(`${response.status} without Retry-After`)
      } else {
        note(`unexpected ${response.status}: ${text.slice(0, 200)}`)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, worker) => sender(worker)))
  const seconds = (performance.now() - started) / 1000
  const samples = rss.stop()
  driverDelay.disable()

  // Memory: V8 and the socket pools grow while warming up, then level off. A
  // leak keeps growing, so the second half of the run may add little.
  const half = samples[Math.floor(samples.length / 2)] ?? 0
  const end = Math.max(...samples.slice(Math.floor(samples.length / 2)))
  const allowedGrowth = Math.max(RSS_SECOND_HALF_GROWTH_MB * 1048576, half * 0.25)

  const stored = await sql<{ id: string }[]>`select event_id::text as id from progress_events`
  const storedIds = new Set(stored.map((row) => row.id))
  const lost = [...acknowledged].filter((id) => !storedIds.has(id)).length
  const writtenAnyway = [...refused].filter((id) => storedIds.has(id)).length

  const ok = statuses.get('200') ?? 0
  const shed = statuses.get('503 OVERLOADED') ?? 0
  const okP95 = percentile(okLatencies, 95)
  t.same(problems, [], 'every answer is a 200 accounting for all events, or a coded 503/429 with Retry-After; no request failed')
  t.equal(failures, 0, 'no connection error or client timeout')
  t.ok(ok > 0, 'requests were accepted throughout')
  t.ok(shed > 0, 'load past the in-flight bound was shed with 503 OVERLOADED')
  t.ok(okP95 < OK_P95_BOUND_MS, `accepted requests' p95 (${round(okP95)} ms) stays under ${OK_P95_BOUND_MS} ms`)
  t.ok(Math.max(...samples) < RSS_CEILING_MB * 1048576, `API RSS stays under ${RSS_CEILING_MB} MB (max ${mb(Math.max(...samples))} MB)`)
  // A short (ci) run is all warm-up; only a full run can show the level.
  if (SCALE === 'full') {
    t.ok(end - half <= allowedGrowth, `API RSS levels off: ${mb(half)} MB at half time, at most ${mb(end)} MB after (allowed +${mb(allowedGrowth)} MB)`)
  }
  t.equal(lost, 0, 'every acknowledged event is stored')
  t.equal(writtenAnyway, 0, 'nothing from a refused batch was written')
  t.equal(stored.length, acknowledged.size, 'the database holds exactly the acknowledged events')

  reportFigures(t, 'overload', {
    seconds: round(seconds),
    concurrency,
    inFlightBound: bound,
    learners: size.learners,
    requests,
    offeredPerSecond: round(requests / seconds),
    offeredVsTarget: round(requests / seconds / TARGET_BATCHES_PER_SECOND, 2),
    acceptedPerSecond: round(ok / seconds),
    statuses: Object.fromEntries(statuses),
    shedShare: round(shed / Math.max(1, requests), 3),
    okP50Ms: round(percentile(okLatencies, 50)),
    okP95Ms: round(okP95),
    okP99Ms: round(percentile(okLatencies, 99)),
    refusedP50Ms: round(percentile(refusedLatencies, 50)),
    refusedP95Ms: round(percentile(refusedLatencies, 95)),
    rssMb: { first: mb(samples[0] ?? 0), halfTime: mb(half), secondHalfMax: mb(end), samples: samples.length },
    // about twelve points across the run, for the docs' memory curve
    rssSeriesMb: samples.filter((_, i) => i % Math.max(1, Math.floor(samples.length / 12)) === 0).map(mb),
    driverLoopDelayP99Ms: round(driverDelay.percentile(99) / 1e6),
    eventsStored: stored.length,
    lost,
    writtenAnyway,
  })
})
