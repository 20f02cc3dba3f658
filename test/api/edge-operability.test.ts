// What operators rely on: request ids (honoured or generated, echoed, logged),
// logs that never contain a token, an OpenAPI document built from the route
// schemas, and /metrics in Prometheus format.
import t from 'tap'
import { buildApp } from '../../src/api/app.ts'
import { testConfig, testDatabase, seedOrg, progressEvent } from '../helper.ts'
import { BATCH, buildEdge, captureLog, metric, scrape } from './edge-helper.ts'

t.test('x-request-id is honoured when well-formed, generated otherwise, echoed and logged', async (t) => {
  const h = await buildEdge(t)
  const token = await h.token('alice')
  const given = await h.post(token, { events: [] }, { 'x-request-id': 'client-req.42:a' })
  t.equal(given.headers['x-request-id'], 'client-req.42:a', 'honoured and echoed')
  const generated = await h.post(token, { events: [] })
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'generated when absent')
  const unsafe = await h.post(token, { events: [] }, { 'x-request-id': 'bad id\twith spaces' })
  t.match(unsafe.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'replaced when malformed (no log injection)')
  const unauthorized = await h.app.inject({ method: 'POST', url: BATCH, headers: { 'x-request-id': 'no-token-1' }, payload: {} })
  t.equal(unauthorized.headers['x-request-id'], 'no-token-1', 'echoed on errors too')
  const notFound = await h.app.inject({ method: 'GET', url: '/nope', headers: { 'x-request-id': 'missing-1' } })
  t.equal(notFound.headers['x-request-id'], 'missing-1')

  const completed = h.log.lines.filter((line) => line.msg === 'request completed')
  for (const id of ['client-req.42:a', generated.headers['x-request-id'], 'no-token-1', 'missing-1']) {
    t.ok(completed.some((line) => line.reqId === id), `request ${id} is logged with its id`)
  }
})

t.test('the Authorization header never reaches the logs', async (t) => {
  const url = await testDatabase(t)
  const log = captureLog()
  const app = await buildApp({ config: { ...testConfig, LOG_LEVEL: 'trace' }, databaseUrl: url, logStream: log, edge: { processMetrics: false } })
  // A route that logs the request headers, the ways a debugging session might.
  app.get('/debug-echo', async (request) => {
    request.log.info({ headers: request.headers }, 'debug request')
    request.log.info({ request: { url: request.url, headers: request.headers } }, 'debug nested')
    request.log.info({ req: request }, 'debug req')
    return { ok: true }
  })
  await app.ready()
  t.teardown(() => app.close())
  const token = 'eyJhbGciOiJIUzI1NiJ9.secret-claims.secret-signature'

  const echo = await app.inject({ method: 'GET', url: '/debug-echo', headers: { authorization: `Bearer ${token}` } })
  t.equal(echo.statusCode, 401, 'a bad token is refused')
  const debugLine = log.lines.find((line) => line.msg === 'debug request')
  t.notOk(debugLine, 'the route never ran')
  // Authenticate for real, then log the headers.
  const { mintToken } = await import('../../src/auth/tokens.ts')
  const real = await mintToken(testConfig.AUTH_JWT_SECRET!, { userId: 'alice' })
  await app.inject({ method: 'GET', url: '/debug-echo', headers: { authorization: `Bearer ${real}` } })
  await app.inject({ method: 'POST', url: BATCH, headers: { authorization: `Bearer ${real}` }, payload: { events: [progressEvent()] } })
  await app.inject({ method: 'POST', url: BATCH, headers: { authorization: `Bearer ${token}` }, payload: { events: [progressEvent()] } })

  type Line = { headers?: Record<string, string>; request?: { headers?: Record<string, string> }; req?: Record<string, unknown> }
  const line = (msg: string) => log.lines.find((entry) => entry.msg === msg) as Line | undefined
  t.equal(line('debug request')?.headers?.authorization, '[redacted]', 'headers logged at the top level: redacted')
  t.equal(line('debug request')?.headers?.['x-request-id'] ?? 'kept', 'kept', 'other headers stay')
  t.equal(line('debug nested')?.request?.headers?.authorization, '[redacted]', 'headers logged one level down: redacted')
  t.ok(line('debug req')?.req, 'a logged request is serialized')
  const all = log.raw.join('\n')
  t.ok(log.raw.length >= 4, `log output captured (${log.raw.length} lines)`)
  t.notOk(all.includes(real), 'the valid token appears nowhere in the logs')
  t.notOk(all.includes('secret-signature'), 'nor does the invalid one')
})

t.test('the OpenAPI document lists the ingestion routes with their schemas', async (t) => {
  const h = await buildEdge(t)
  const res = await h.app.inject({ method: 'GET', url: '/documentation/json' })
  t.equal(res.statusCode, 200, 'public, no token needed')
  const doc = res.json()
  t.match(doc.openapi, /^3\./)
  for (const path of ['/api/client/progress/batch', '/api/client/progress/lesson', '/api/analytics/events/batch', '/api/analytics/events']) {
    const post = doc.paths[path]?.post
    t.ok(post, `${path} is documented`)
    t.ok(post?.requestBody?.content?.['application/json']?.schema, `${path} has its body schema`)
    t.ok(post?.responses?.['200'], `${path} has its 200 response`)
  }
  // The event shapes, although the routes check only the envelope (events are validated one by one).
  t.match(doc.components.schemas.ProgressEvent, {
    type: 'object',
    required: ['eventId', 'courseId', 'lessonId', 'type', 'occurredAt'],
    properties: { type: { anyOf: [{ enum: ['lesson_started'] }, { enum: ['lesson_progress'] }, { enum: ['lesson_completed'] }] }, progress: { minimum: 0, maximum: 100 } },
  })
  t.notOk('$id' in doc.components.schemas.ProgressEvent, 'no JSON Schema $id in an OpenAPI 3.0 schema')
  t.same(doc.components.schemas.AnalyticsEvent.properties.properties, { type: 'object', additionalProperties: true, description: 'at most 8 KB serialized, depth 4' })
  const batch = doc.paths['/api/client/progress/batch'].post
  t.same(batch.requestBody.content['application/json'].schema.properties.events.items.allOf, [{ $ref: '#/components/schemas/ProgressEvent' }])
  t.same(doc.paths['/api/analytics/events'].post.requestBody.content['application/json'].schema, { $ref: '#/components/schemas/AnalyticsEvent' })
  t.match(batch.parameters, [{ in: 'header', name: 'X-Client-Queue-Depth' }])
  t.same(Object.keys(batch.responses).sort(), ['200', '400', '401', '403', '413', '415', '429', '503'], 'each refusal by its status')
  t.ok(batch.responses['200'].headers['X-Client-Queue-Lag'] && batch.responses['503'].headers['Retry-After'], 'with the lag and Retry-After headers')
  const progress = doc.paths['/api/v1/progress/me'].get
  t.ok(progress.responses['200'].headers['X-Client-Queue-Lag'], 'reads document the lag header too: every response carries it')
  t.ok(progress.responses['503'].headers['Retry-After'], 'and their 503 (shedding, an unavailable database) with Retry-After')
  t.ok(doc.paths['/api/v1/analytics/learner/{userId}/refresh'].post.responses['429'].headers['Retry-After'], "and the refresh limit's 429")
  t.same(doc.security, [{ bearer: [] }], 'routes need a bearer token')
  t.same(doc.paths['/api/health']?.get?.security, [], 'but not the health check')
  t.notOk(doc.paths['/metrics'], '/metrics is not part of the API document')
})

t.test('/metrics: Prometheus text with requests, events, ingestion latency, lag, pool, limits and Redis state', async (t) => {
  const h = await buildEdge(t, { config: { RATE_LIMIT_BATCHES_PER_SECOND: 2 } })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const token = await h.token('alice')
  const old = new Date(Date.now() - 40 * 86400000).toISOString()
  await h.post(token, { events: [progressEvent(), progressEvent({ occurredAt: old })] })
  await h.post(token, { events: [{ ...progressEvent(), userId: 'alice' }] })
  t.equal((await h.post(token)).statusCode, 429)

  const res = await h.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200, 'public, no token needed')
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const text = res.body
  t.equal(metric(text, 'http_requests_total{route="/api/client/progress/batch",method="POST",status="200"}'), 2)
  t.equal(metric(text, 'http_requests_total{route="/api/client/progress/batch",method="POST",status="429"}'), 1)
  t.ok(metric(text, 'http_request_duration_seconds_count{route="/api/client/progress/batch",method="POST",status="200"}') === 2)
  t.equal(metric(text, 'ingest_events_total{stream="progress",outcome="accepted"}'), 2)
  t.equal(metric(text, 'ingest_events_total{stream="progress",outcome="rejected"}'), 1)
  t.equal(metric(text, 'ingest_events_total{stream="progress",outcome="duplicates"}'), 0)
  t.equal(metric(text, 'ingest_call_duration_seconds_count{stream="progress"}'), 2)
  t.equal(metric(text, 'ingest_queue_lag_ms'), 0)
  t.type(metric(text, 'ingest_smoothed_latency_ms'), 'number')
  t.equal(metric(text, 'db_pool_in_use_estimate'), 0)
  t.equal(metric(text, 'db_pool_waiting_estimate'), 0)
  t.equal(metric(text, 'db_pool_max'), 10)
  t.equal(metric(text, 'rate_limited_total'), 1)
  t.equal(metric(text, 'shed_requests_total'), undefined, 'no refusals yet (no series until one happens)')
  t.equal(metric(text, 'rate_limit_redis_fallback'), 0, 'no REDIS_URL: not a fallback')

  const notFound = await h.app.inject({ method: 'GET', url: `/random-${Date.now()}` })
  t.equal(notFound.statusCode, 404)
  t.equal(metric(await scrape(h.app), 'http_requests_total{route="(unmatched)",method="GET",status="404"}'), 1, 'unknown paths share one label')
})

t.test('each app has its own registry; process metrics are on by default', async (t) => {
  const url = await testDatabase(t)
  const apps = await Promise.all([0, 1].map(() => buildApp({ config: testConfig, databaseUrl: url })))
  for (const app of apps) {
    await app.ready()
    t.teardown(() => app.close())
  }
  await apps[0]!.inject({ method: 'GET', url: '/api/health' })
  t.equal(metric(await scrape(apps[0]!), 'http_requests_total{route="/api/health",method="GET",status="200"}'), 1)
  t.equal(metric(await scrape(apps[1]!), 'http_requests_total{route="/api/health",method="GET",status="200"}'), undefined, 'not counted by the other app')
  t.match(await scrape(apps[1]!), /process_resident_memory_bytes \d+/)
})
