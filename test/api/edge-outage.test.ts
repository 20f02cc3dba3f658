// Database outage: with PostgreSQL stopped or hung, ingestion answers 503
// DATABASE_UNAVAILABLE with Retry-After within 2 s and health reports it;
// when the database is back, the same app recovers without a restart.
// Uses an embedded server of its own: the shared test server is never stopped.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { buildApp, READ_DEADLINE_MS, type AppOptions } from '../../src/api/app.ts'
import { WRITE_DEADLINE_MS } from '../../src/api/plugins/ingest.ts'
import { mintToken } from '../../src/auth/tokens.ts'
import { openEmbedded } from '../../src/db/embedded.ts'
import { migrate } from '../../src/db/migrate.ts'
import { createPool } from '../../src/db/pool.ts'
import { progressEvent, seedOrg, TEST_SECRET, testConfig, testDatabase, testPool } from '../helper.ts'
import { BATCH, captureLog, eventually, tcpRelay } from './edge-helper.ts'

t.test('database stopped: 503 DATABASE_UNAVAILABLE fast, health 503; restarted: recovers', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(process.env.SCRATCH_DIR ?? os.tmpdir(), 'edge-outage-'))
  fs.chmodSync(dataDir, 0o711) // the server may run as the postgres user
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))

  let server = await openEmbedded(dataDir)
  t.teardown(() => server.stop())
  const setup = createPool(server.url, { max: 1 })
  await migrate(setup, { retentionDays: 30, aheadDays: 7 })
  await seedOrg(setup, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  await setup.end()

  const log = captureLog()
  const app = await buildApp({ config: { ...testConfig, LOG_LEVEL: 'info' }, databaseUrl: server.url, logStream: log, edge: { processMetrics: false } })
  await app.ready()
  t.teardown(() => app.close())
  const token = await mintToken(TEST_SECRET, { userId: 'alice' })
  const post = () =>
    app.inject({ method: 'POST', url: BATCH, headers: { authorization: `Bearer ${token}` }, payload: { events: [progressEvent()] } })
  const health = () => app.inject({ method: 'GET', url: '/api/health' })

  t.equal((await post()).statusCode, 200, 'up: accepted')
  t.equal((await health()).statusCode, 200)

  await server.stop()
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    const res = await post()
    const ms = performance.now() - started
    t.equal(res.statusCode, 503, `down: 503 (attempt ${i + 1})`)
    t.same(res.json(), { statusCode: 503, code: 'DATABASE_UNAVAILABLE', error: 'Service Unavailable', message: 'Database is unavailable: retry in 2 seconds' })
    t.equal(res.headers['retry-after'], '2')
    t.ok(res.headers['x-client-queue-lag'] !== undefined, 'the lag header is on 503s too')
    t.ok(ms < 2000, `answered in ${Math.round(ms)} ms, within 2 s`)
  }
  // Under load the failed connection attempts add up: postgres.js would then
  // wait seconds before each new attempt (its reconnect backoff), so a request
  // could hang. Every one must still be answered within 2 s.
  const slowest: number[] = []
  for (let round = 0; round < 15; round++) {
    const started = performance.now()
    const answers = await Promise.all(Array.from({ length: 10 }, () => post()))
    slowest.push(Math.round(performance.now() - started))
    t.ok(answers.every((res) => res.statusCode === 503 && res.json().code === 'DATABASE_UNAVAILABLE'), `round ${round + 1}: all 503`)
  }
  t.ok(slowest.every((ms) => ms < 2000), `150 requests, 10 at a time, each round within 2 s: ${slowest} ms`)
  const down = await health()
  t.equal(down.statusCode, 503, 'health reports the outage')
  t.equal(down.json().db.ok, false)
  t.equal(down.json().status, 'unavailable')
  t.equal(down.headers['retry-after'], '2')
  t.notMatch(log.raw.join('\n'), /"statusCode":500/, 'never a 500')

  server = await openEmbedded(dataDir) // same data directory, same port
  const back = performance.now()
  const recovered = await eventually(async () => (await post()).statusCode === 200, 15000, 50)
  const recoveryMs = Math.round(performance.now() - back)
  t.ok(recovered, 'accepted again after the database restarts, without restarting the app')
  // postgres.js's default reconnect backoff (up to 20 s after many failures)
  // would keep requests waiting long after the database is back.
  t.ok(recoveryMs < 2000, `recovered ${recoveryMs} ms after the database was back`)
  const up = await health()
  t.equal(up.statusCode, 200)
  t.equal(up.json().db.ok, true)
  const check = createPool(server.url, { max: 1 })
  const [row] = await check<{ count: number }[]>`select count(*)::int as count from progress_events`
  await check.end()
  t.ok(row!.count >= 2, `the events sent while up were stored (${row!.count})`)
})

/**
 * The app on a test database that it reaches through a relay, which can
 * freeze or cut the connections like a failing host; post() sends a batch as
 * alice, a learner of org-a.
 */
async function appBehindRelay(t: Test, options: Pick<AppOptions, 'config' | 'logStream'> = { config: testConfig }) {
  const url = new URL(await testDatabase(t))
  const relay = await tcpRelay(t, Number(url.port), url.hostname)
  const viaRelay = new URL(url)
  viaRelay.hostname = '127.0.0.1'
  viaRelay.port = String(relay.port)
  await seedOrg(testPool(t, url.toString()), 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const app = await buildApp({ ...options, databaseUrl: viaRelay.toString(), edge: { processMetrics: false } })
  await app.ready()
  t.teardown(() => app.close())
  const token = await mintToken(TEST_SECRET, { userId: 'alice' })
  const post = () =>
    app.inject({ method: 'POST', url: BATCH, headers: { authorization: `Bearer ${token}` }, payload: { events: [progressEvent()] } })
  return { app, relay, post }
}

t.test('a database host that stops answering: 503 within 2 s, not a hang, then recovery', async (t) => {
  const { app, relay, post } = await appBehindRelay(t)
  t.equal((await post()).statusCode, 200)

  relay.freeze()
  // The first calls fail on the dropped connections; later ones must open a
  // new connection, which hangs until the pool's connect timeout.
  const times: number[] = []
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    const res = await post()
    times.push(Math.round(performance.now() - started))
    t.equal(res.statusCode, 503)
    t.equal(res.json().code, 'DATABASE_UNAVAILABLE')
    t.equal(res.headers['retry-after'], '2')
  }
  t.ok(times.every((ms) => ms < 2000), `each answered within 2 s: ${times} ms`)
  t.ok(times.some((ms) => ms >= 1000), `a new connection hung until the connect timeout: ${times} ms`)
  const health = await app.inject({ method: 'GET', url: '/api/health' })
  t.equal(health.statusCode, 503)
  t.equal(health.json().db.ok, false)

  relay.thaw()
  t.ok(await eventually(async () => (await post()).statusCode === 200, 10000, 200), 'recovers when the host answers again')
})

t.test('a database that hangs with the connections open: 503 at the write deadline, a queued batch never written', async (t) => {
  const { app, relay } = await appBehindRelay(t)
  const token = await mintToken(TEST_SECRET, { userId: 'alice' })
  const send = (event: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: BATCH, headers: { authorization: `Bearer ${token}` }, payload: { events: [event] } })
  t.equal((await send(progressEvent())).statusCode, 200, 'the pool has an open connection')

  relay.stall() // the connection stays open; nothing comes back (a frozen server, a stalled disk)
  const inFlight = progressEvent()
  const queued = progressEvent()
  const started = performance.now()
  const first = send(inFlight)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const second = send(queued) // group commit: waits behind the call in flight
  const answers = await Promise.all([first, second])
  const ms = Math.round(performance.now() - started)
  for (const res of answers) {
    t.equal(res.statusCode, 503)
    t.match(res.json(), { code: 'DATABASE_UNAVAILABLE' })
    t.equal(res.headers['retry-after'], '2')
  }
  t.ok(ms >= WRITE_DEADLINE_MS - 100 && ms < WRITE_DEADLINE_MS + 1500, `answered at the deadline, not when the database came back: ${ms} ms`)

  relay.resume()
  const stored = async (event: Record<string, unknown>) => {
    const [row] = await app.sql<{ n: number }[]>`select count(*)::int as n from progress_events where event_id = ${event.eventId as string}`
    return row!.n
  }
  await eventually(async () => (await stored(inFlight)) === 1, 10000, 100)
  t.equal(await stored(inFlight), 1, 'the call the database was running completes once it answers (a retry is a duplicate)')
  t.match((await send(inFlight)).json(), { duplicates: 1 })
  t.equal(await stored(queued), 0, 'the batch still queued when its deadline passed was never written')
  t.match((await send(queued)).json(), { accepted: 1 }, 'and its retry is stored')
})

t.test('a read on a database that hangs with the connections open: 503 at the read deadline', async (t) => {
  const { app, relay } = await appBehindRelay(t)
  const token = await mintToken(TEST_SECRET, { userId: 'alice' })
  const read = () => app.inject({ method: 'GET', url: '/api/v1/progress/me', headers: { authorization: `Bearer ${token}` } })
  t.equal((await read()).statusCode, 200, 'the pool has an open connection, which the next read takes')

  relay.stall()
  const started = performance.now()
  const res = await read()
  const ms = Math.round(performance.now() - started)
  t.equal(res.statusCode, 503)
  t.match(res.json(), { code: 'DATABASE_UNAVAILABLE', message: 'Database is unavailable: retry in 2 seconds' })
  t.equal(res.headers['retry-after'], '2')
  t.ok(ms >= READ_DEADLINE_MS - 100 && ms < READ_DEADLINE_MS + 1500, `answered at the deadline, not when the database came back: ${ms} ms`)

  relay.resume()
  t.ok(await eventually(async () => (await read()).statusCode === 200, 10000, 100), 'answered again once it does')
})

t.test('an unreachable database: one warning for a burst of 503s, not a stack trace per request', async (t) => {
  const log = captureLog()
  const { relay, post } = await appBehindRelay(t, { config: { ...testConfig, LOG_LEVEL: 'info' }, logStream: log })
  t.equal((await post()).statusCode, 200)

  await relay.cut() // connections dropped, new ones refused
  const before = log.lines.length
  let answered = 0
  for (let round = 0; round < 10; round++) {
    const answers = await Promise.all(Array.from({ length: 20 }, () => post()))
    answered += answers.filter((res) => res.statusCode === 503 && res.json().code === 'DATABASE_UNAVAILABLE').length
  }
  t.equal(answered, 200, 'every request answered 503 DATABASE_UNAVAILABLE')
  const reports = log.lines.slice(before).filter((line) => (line.level as number) >= 40)
  t.equal(reports.filter((line) => line.level === 50).length, 0, 'no error line per request')
  t.equal(reports.length, 1, `one warning for the burst (${reports.length})`)
  t.match(reports[0], { level: 40, msg: 'answering 503 DATABASE_UNAVAILABLE', occurrences: 1, cause: { code: String, message: String } }, 'saying why, at the first failure')
  t.notOk(reports[0]!.err, 'without a stack trace')
})
