// Load shedding: past the in-flight bound (pool size x factor, twice that for
// a burst while no queue stands) ingestion is refused at once with 503
// OVERLOADED and nothing is written; process pressure (event-loop delay, heap,
// RSS) sheds too; memory stays bounded under a sustained overload of a slow
// database.
import v8 from 'node:v8'
import vm from 'node:vm'
import t from 'tap'
import { InFlightGate } from '../../src/api/plugins/shedding.ts'
import { progressEvent, seedOrg } from '../helper.ts'
import { BATCH, buildEdge, eventually, lockAssignments, metric, scrape, sleep } from './edge-helper.ts'

const learners = (n: number) => Array.from({ length: n }, (_, k) => `learner-${k}`)

t.test('the gate admits a burst, and only the standing bound once a queue stands', async (t) => {
  let now = 0
  const gate = new InFlightGate({ bound: 2, burstBound: 4, targetMs: 50, intervalMs: 1000, now: () => now })
  const take = (n: number) => Array.from({ length: n }, () => gate.acquire())
  t.equal(gate.bound, 4, 'no queue stands at first')
  const first = take(4)
  t.throws(() => gate.acquire(), { code: 'OVERLOADED' }, 'full at the burst bound')
  now = 900
  first[0]!() // answered after 900 ms: no sign that the queue drains
  t.equal(gate.bound, 4, 'within the interval the burst bound holds')
  now = 1001
  t.ok(gate.standing, 'no call answered within the target for a whole interval: a queue stands')
  t.equal(gate.bound, 2)
  t.throws(() => gate.acquire(), { code: 'OVERLOADED' }, '3 in flight, standing bound 2')
  first[1]!()
  t.throws(() => gate.acquire(), { code: 'OVERLOADED' }, '2 in flight, still full')
  first[2]!()
  const quick = gate.acquire()
  now = 1040
  t.equal(quick(), 39, 'answered within 39 ms (release says how long the slot was held): the queue drained')
  t.equal(quick(), 39, 'a repeated release frees nothing more and answers the same')
  t.notOk(gate.standing, 'a call answered within the target clears the queue')
  t.equal(gate.bound, 4)
  const burst = take(3)
  t.equal(gate.inFlight, 4)
  now = 3000
  t.equal(gate.bound, 2, 'stands again when nothing is answered for an interval (a stalled database)')
  first[3]!()
  for (const release of burst) release()
  t.equal(gate.inFlight, 0)
  t.notOk(gate.standing, 'an empty gate has no queue, however slow its last answers: idle, it shows the burst bound')
  t.equal(gate.bound, 4)
  take(1)
  t.notOk(gate.standing, 'a call that finds the gate empty waited for nobody: no queue stands')
  t.equal(new InFlightGate({ bound: 4, burstBound: 2 }).burstBound, 4, 'a burst bound below the standing bound is raised to it')
})

t.test('503 OVERLOADED at once under a saturated pool, nothing written, and recovery after', async (t) => {
  // Standing bound: 4 connections x 1 = 4 ingestion calls in flight; while no
  // queue stands, twice that. Group commit runs one call per stream, so
  // connections stay free for health checks.
  const h = await buildEdge(t, { config: { DB_POOL_MAX: 4 }, edge: { inFlightPerConnection: 1 } })
  const users = learners(30)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], users)
  const tokens = await Promise.all(users.map((user) => h.token(user)))
  t.equal(metric(await scrape(h.app), 'ingest_in_flight_bound'), 8, 'an idle gate admits the burst bound')

  const lock = await lockAssignments(h.sql)
  t.teardown(() => lock.release())
  let settled = 0
  const sends = tokens.map((token) => {
    const response = h.post(token, { events: [progressEvent(), progressEvent()] })
    void response.then(() => settled++)
    return response
  })
  // While the database is still blocked, every request past the bound has been answered.
  t.ok(await eventually(() => settled >= 22, 10000), `22 requests answered while the database is blocked (${settled})`)
  await sleep(100)
  t.equal(settled, 22, 'the 8 admitted requests are still waiting for the database')
  const during = await scrape(h.app)
  t.equal(metric(during, 'ingest_in_flight'), 8)
  t.equal(metric(during, 'db_pool_in_use_estimate'), 4)
  t.equal(metric(during, 'db_pool_waiting_estimate'), 4)
  t.equal(metric(during, 'shed_requests_total{reason="in_flight"}'), 22)
  const health = await h.app.inject({ method: 'GET', url: '/api/health' })
  t.equal(health.statusCode, 200, 'health still answers while ingestion is saturated')
  // Shedding only starts once the gate is full, so a new request is refused before its body is read.
  const early = await h.app.inject({ method: 'POST', url: BATCH, headers: { authorization: `Bearer ${tokens[0]}`, 'content-type': 'application/json' }, payload: '{ not json' })
  t.equal(early.statusCode, 503, 'refused at onRequest: the malformed body was never parsed')
  // Nothing answered for a whole interval: a queue stands and the bound falls back.
  t.ok(await eventually(async () => metric(await scrape(h.app), 'ingest_in_flight_bound') === 4, 5000), 'the bound falls to 4 while the database stays blocked')

  await lock.release()
  const responses = await Promise.all(sends)
  const refused = responses.filter((res) => res.statusCode === 503)
  const accepted = responses.filter((res) => res.statusCode === 200)
  t.equal(refused.length, 22)
  t.equal(accepted.length, 8)
  for (const res of refused.slice(0, 3)) {
    t.same(res.json(), { statusCode: 503, code: 'OVERLOADED', error: 'Service Unavailable', message: 'Service is overloaded: retry in 2 seconds' })
    t.equal(res.headers['retry-after'], '2')
    t.ok(res.headers['x-client-queue-lag'] !== undefined, 'the lag header is on 503s too')
  }
  const [row] = await h.sql<{ count: number }[]>`select count(*)::int as count from progress_events`
  t.equal(row!.count, 16, 'only the 8 admitted batches were written')

  const after = await h.post(tokens[1]!)
  t.equal(after.statusCode, 200, 'admitted again once calls complete')
  t.equal(metric(await scrape(h.app), 'ingest_in_flight'), 0)
  t.equal(metric(await scrape(h.app), 'ingest_in_flight_bound'), 8, 'a call that found the gate empty clears the queue')
})

function forceGc(): () => void {
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as () => void
}

t.test('memory stays bounded under sustained overload against a blocked database', async (t) => {
  const h = await buildEdge(t, { config: { DB_POOL_MAX: 2 }, edge: { inFlightPerConnection: 2 }, logLevel: 'warn' })
  const users = learners(50)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], users)
  const tokens = await Promise.all(users.map((user) => h.token(user)))
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const address = h.app.server.address()
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  // ~10 KB per request body.
  const body = JSON.stringify({ events: Array.from({ length: 50 }, () => progressEvent()) })
  const send = (k: number) =>
    fetch(`${base}${BATCH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens[k % tokens.length]}`, 'content-type': 'application/json' },
      body,
    })

  const lock = await lockAssignments(h.sql)
  t.teardown(() => lock.release())
  // Fill the gate (burst bound 2 x 2 x 2 = 8) with requests that wait on the blocked database.
  const admitted = [0, 1, 2, 3, 4, 5, 6, 7].map(send)
  t.ok(await eventually(() => h.app.ingestGate.inFlight === 8, 10000), 'the gate is full')

  const latencies: number[] = []
  const statuses = new Map<number, number>()
  const flood = async (total: number, concurrency: number) => {
    let next = 0
    const worker = async () => {
      while (next < total) {
        const k = next++
        const started = performance.now()
        const res = await send(k)
        await res.arrayBuffer()
        latencies.push(performance.now() - started)
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
  }
  // Warm-up first, so that one-time allocations (JIT, sockets, client pools)
  // are not counted: what must not happen is growth with the number of requests.
  const WARM_UP = 1500
  const TOTAL = 2500
  await flood(WARM_UP, 50)
  const gc = forceGc()
  gc()
  const before = process.memoryUsage()
  await flood(TOTAL, 50)
  gc()
  const after = process.memoryUsage()

  t.same([...statuses], [[503, WARM_UP + TOTAL]], 'every request past the bound was refused')
  t.equal(h.app.ingestGate.inFlight, 8, 'while the admitted ones still wait for the database: 503s never waited for it')
  latencies.sort((a, b) => a - b)
  const median = latencies[Math.floor(latencies.length / 2)]!
  t.comment(`503 latency: median ${Math.round(median)} ms, slowest ${Math.round(latencies.at(-1)!)} ms (50 concurrent clients)`)
  t.ok(median < 1000, '503s come back quickly (generous bound for a loaded machine)')
  const heapGrowth = after.heapUsed - before.heapUsed
  const rssGrowth = after.rss - before.rss
  t.comment(`over ${TOTAL} refused requests: heap ${(heapGrowth / 1048576).toFixed(1)} MB, rss ${(rssGrowth / 1048576).toFixed(1)} MB`)
  // Generous: queueing them would hold 2000 x 10 KB bodies plus their parsed events.
  t.ok(heapGrowth < 32 * 1048576, 'heap growth stays bounded')
  t.ok(rssGrowth < 128 * 1048576, 'rss growth stays bounded')

  await lock.release()
  const answers = await Promise.all(admitted)
  t.same(answers.map((res) => res.status), Array(8).fill(200), 'the admitted requests complete')
  await Promise.all(answers.map((res) => res.arrayBuffer()))
})

t.test('process pressure (heap, RSS) sheds ingestion but never health or metrics', async (t) => {
  for (const limit of ['maxHeapUsedBytes', 'maxRssBytes'] as const) {
    const h = await buildEdge(t, { edge: { pressure: { [limit]: 1, sampleInterval: 50 } } })
    await sleep(150) // a sample or two
    const alice = await h.token('alice')
    const res = await h.post(alice)
    t.equal(res.statusCode, 503, `${limit}: ingestion refused`)
    t.equal(res.json().code, 'OVERLOADED')
    t.equal(res.headers['retry-after'], '2')
    t.equal(res.headers['x-client-queue-lag'], '0')
    const read = await h.app.inject({ method: 'GET', url: '/api/v1/progress/me', headers: { authorization: `Bearer ${alice}` } })
    t.equal(read.statusCode, 503, `${limit}: other authenticated routes too`)
    t.equal((await h.app.inject({ method: 'GET', url: '/api/health' })).statusCode, 200, `${limit}: health answers`)
    const metrics = await scrape(h.app)
    const reason = limit === 'maxHeapUsedBytes' ? 'heapUsedBytes' : 'rssBytes'
    t.equal(metric(metrics, `shed_requests_total{reason="${reason}"}`), 2, `${limit}: metrics answer and count the refusals`)
    const [row] = await h.sql<{ count: number }[]>`select count(*)::int as count from progress_events`
    t.equal(row!.count, 0, 'nothing written')
  }
})

t.test('a blocked event loop sheds ingestion until it recovers', async (t) => {
  const h = await buildEdge(t, { edge: { pressure: { maxEventLoopDelay: 50, sampleInterval: 250 } } })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const alice = await h.token('alice')
  // under-pressure reads the mean delay over each 250 ms sample: 1.5 s stuck
  // passes 50 ms however many 10 ms ticks the sample had before it (600 ms
  // did only when the block began early in its sample).
  const blockUntil = Date.now() + 1500
  while (Date.now() < blockUntil) {
    // Busy: a handler stuck on CPU.
  }
  const underPressure = await eventually(() => h.app.isUnderPressure(), 1000, 5)
  t.ok(underPressure, `detected (delay ${Math.round(h.app.memoryUsage().eventLoopDelay)} ms)`)
  const res = await h.post(alice)
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'OVERLOADED')
  t.ok(await eventually(() => !h.app.isUnderPressure(), 3000), 'recovers once the loop is free')
  t.equal((await h.post(alice)).statusCode, 200)
})
