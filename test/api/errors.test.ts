// Every whole-request error of the contract's table, and the catalogue's docs.
import fs from 'node:fs'
import net from 'node:net'
import { gzipSync } from 'node:zlib'
import { SignJWT } from 'jose'
import t from 'tap'
import type { FastifyError } from 'fastify'
import { toCodedError } from '../../src/api/error-handler.ts'
import { Errors } from '../../src/errors.ts'
import { build, progressEvent, seedOrg, TEST_SECRET } from '../helper.ts'

const BATCH = '/api/client/progress/batch'

t.test('every code in the catalogue is documented in docs/errors.md', async (t) => {
  const docs = fs.readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
  for (const code of Object.keys(Errors)) t.match(docs, `\`${code}\``, `${code} is documented`)
})

t.test('whole-request errors answer with a coded body and write nothing', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice', 'bob'])
  const alice = await h.token('alice')
  const auth = { authorization: `Bearer ${alice}` }
  const json = { ...auth, 'content-type': 'application/json' }
  const expired = await h.token('alice', { ttl: -60 })
  const wrongSecret = await new SignJWT({ role: 'learner' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('alice')
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode('x'.repeat(40)))
  const unsigned = [
    Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url'),
    Buffer.from(JSON.stringify({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url'),
    '',
  ].join('.')
  // 'é' as latin1 writes it: one byte, 0xE9, that UTF-8 cannot read.
  const latin1Body = Buffer.from(JSON.stringify({ events: [progressEvent({ lessonId: 'le\u00e9' })] }), 'latin1')
  const bigEvent = progressEvent({ lessonId: 'x'.repeat(100) })
  const bigBody = JSON.stringify({ events: Array.from({ length: 2900 }, () => bigEvent) })
  t.ok(Buffer.byteLength(bigBody) > 300_000)

  const cases: { name: string; headers: Record<string, string>; body: string | Buffer; status: number; code: string }[] = [
    { name: 'body is not JSON', headers: json, body: '{"events": [', status: 400, code: 'INVALID_JSON' },
    { name: 'events missing', headers: json, body: '{"sentAt":"2026-01-01T00:00:00Z"}', status: 400, code: 'INVALID_BODY' },
    { name: 'events not an array', headers: json, body: '{"events":{"a":1}}', status: 400, code: 'INVALID_BODY' },
    { name: 'events a number', headers: json, body: '{"events":5}', status: 400, code: 'INVALID_BODY' },
    {
      name: '101 events',
      headers: json,
      body: JSON.stringify({ events: Array.from({ length: 101 }, () => progressEvent()) }),
      status: 400,
      code: 'TOO_MANY_EVENTS',
    },
    { name: '300 KB body', headers: json, body: bigBody, status: 413, code: 'PAYLOAD_TOO_LARGE' },
    { name: 'text/plain', headers: { ...auth, 'content-type': 'text/plain' }, body: JSON.stringify({ events: [progressEvent()] }), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    // UTF-8 only (RFC 8259): another charset is refused, and so are bytes that are not UTF-8, rather than stored as U+FFFD.
    { name: 'a latin1 body', headers: { ...json, 'content-type': 'application/json; charset=latin1' }, body: latin1Body, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { name: 'bytes that are not UTF-8', headers: json, body: latin1Body, status: 400, code: 'INVALID_JSON' },
    // Bodies are taken as sent: compressed, or only said to be, they are refused by their encoding.
    { name: 'gzip body', headers: { ...json, 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify({ events: [progressEvent()] })), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { name: 'plain body said to be br', headers: { ...json, 'content-encoding': 'br' }, body: JSON.stringify({ events: [progressEvent()] }), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { name: 'no token', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events: [progressEvent()] }), status: 401, code: 'UNAUTHORIZED' },
    { name: 'expired token', headers: { authorization: `Bearer ${expired}`, 'content-type': 'application/json' }, body: JSON.stringify({ events: [progressEvent()] }), status: 401, code: 'UNAUTHORIZED' },
    { name: 'wrong secret', headers: { authorization: `Bearer ${wrongSecret}`, 'content-type': 'application/json' }, body: JSON.stringify({ events: [progressEvent()] }), status: 401, code: 'UNAUTHORIZED' },
    { name: 'alg none', headers: { authorization: `Bearer ${unsigned}`, 'content-type': 'application/json' }, body: JSON.stringify({ events: [progressEvent()] }), status: 401, code: 'UNAUTHORIZED' },
    { name: 'not a bearer token', headers: { authorization: `Basic ${alice}`, 'content-type': 'application/json' }, body: JSON.stringify({ events: [progressEvent()] }), status: 401, code: 'UNAUTHORIZED' },
    {
      name: "another learner's userId",
      headers: json,
      body: JSON.stringify({ events: [progressEvent(), progressEvent({ userId: 'bob' })] }),
      status: 403,
      code: 'FOREIGN_USER',
    },
    { name: 'sentAt not a date-time', headers: json, body: JSON.stringify({ events: [progressEvent()], sentAt: 'now' }), status: 400, code: 'INVALID_BODY' },
    // As for occurredAt: RFC 3339's T, not its note's space; a leap second no clock can read.
    { name: 'sentAt with a space for T', headers: json, body: JSON.stringify({ events: [progressEvent()], sentAt: '2026-12-02 18:28:37.000Z' }), status: 400, code: 'INVALID_BODY' },
    { name: 'sentAt on a leap second', headers: json, body: JSON.stringify({ events: [progressEvent()], sentAt: '2026-06-30T23:59:60Z' }), status: 400, code: 'INVALID_BODY' },
  ]
  for (const c of cases) {
    const res = await h.app.inject({ method: 'POST', url: BATCH, headers: c.headers, payload: c.body })
    t.equal(res.statusCode, c.status, `${c.name}: status`)
    const body = res.json()
    t.equal(body.code, c.code, `${c.name}: code`)
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${c.name}: uniform body`)
    t.notMatch(res.body, /at .*\.ts:\d+/, `${c.name}: no stack trace`)
  }
  const [row] = await h.sql<{ n: number }[]>`select (select count(*) from progress_events) + (select count(*) from dead_letter_events) as n`
  t.equal(row?.n, 0, 'nothing was written')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution')

  // A pattern is said in words, not quoted back as a regular expression.
  const badSentAt = await h.app.inject({ method: 'POST', url: BATCH, headers: json, payload: { events: [progressEvent()], sentAt: '2026-12-02' } })
  t.equal(badSentAt.json().message, 'Request body is invalid: body sentAt must be an RFC 3339 date-time with a time zone, such as 2026-12-02T09:30:00Z')
  // Messages read as sentences: one space after the part named, and an unknown key by its name.
  const noEvents = await h.app.inject({ method: 'POST', url: BATCH, headers: json, payload: '{"sentAt":"2026-01-01T00:00:00Z"}' })
  t.equal(noEvents.json().message, "Request body is invalid: body must have required property 'events'")
  const extraField = await h.app.inject({ method: 'POST', url: BATCH, headers: json, payload: { events: [progressEvent({ mood: 'happy' })] } })
  t.match(extraField.json(), { accepted: 0, rejected: [{ index: 0, code: 'invalid_event', message: '/mood is not a field of this event' }] })
  const gzipped = await h.app.inject({ method: 'POST', url: BATCH, headers: { ...json, 'content-encoding': 'gzip' }, payload: gzipSync('{"events":[]}') })
  t.equal(gzipped.json().message, 'Request body must be uncompressed application/json: got Content-Encoding gzip')
  const identity = await h.app.inject({ method: 'POST', url: BATCH, headers: { ...json, 'content-encoding': 'identity' }, payload: { events: [] } })
  t.equal(identity.statusCode, 200, 'Content-Encoding identity is no encoding')
  const chunkedGzip = await h.app.inject({ method: 'POST', url: BATCH, headers: { ...json, 'transfer-encoding': 'gzip, chunked' }, payload: '{"events":[]}' })
  t.match(chunkedGzip.json(), { statusCode: 415, message: 'Request body must be uncompressed application/json: got Transfer-Encoding gzip, chunked' })
  const bodiless = await h.app.inject({ method: 'GET', url: '/api/health', headers: { 'content-encoding': 'gzip' } })
  t.equal(bodiless.statusCode, 200, 'a request without a body is not refused for a stray Content-Encoding')
  const query = await h.app.inject({ method: 'GET', url: '/api/v1/progress/me?course=1', headers: auth })
  t.equal(query.json().message, 'Query string is invalid: querystring has no property "course"')
})

t.test('an unknown route is a coded 404, with or without a token', async (t) => {
  const h = await build(t)
  const res = await h.app.inject({ method: 'GET', url: '/api/nope' })
  t.equal(res.statusCode, 404)
  t.equal(res.json().code, 'NOT_FOUND')
})

t.test('a route asked with a method it does not take is a coded 405 that names the methods it does', async (t) => {
  const h = await build(t)
  for (const [method, url, allow] of [
    ['GET', '/api/client/progress/batch', 'POST'],
    ['POST', '/api/health', 'GET, HEAD'],
    ['DELETE', '/api/v1/jobs/a-job?x=1', 'GET, HEAD'],
    ['POST', '/api/v1/orgs/demo/users/alice', 'DELETE'],
  ] as const) {
    const res = await h.app.inject({ method, url })
    t.equal(res.statusCode, 405, `${method} ${url}`)
    t.equal(res.headers.allow, allow)
    t.match(res.json(), { statusCode: 405, code: 'METHOD_NOT_ALLOWED', message: `Method not allowed: ${url.split('?')[0]} takes ${allow}` })
  }
  t.equal((await h.app.inject({ method: 'POST', url: '/api/client/progress/nope' })).statusCode, 404, 'a path no route has is still a 404')
  for (const url of ['/api/health/', '/api/v1/progress/me/']) {
    const res = await h.app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 404, `GET ${url}: the router serves no trailing slash, so it is not a 405 naming GET`)
  }
  // The answer comes before the body is read: a broken JSON body does not turn it into a 400.
  for (const [method, url, expected] of [
    ['POST', '/api/v1/orgs/demo/rollups', 405],
    ['PUT', '/api/v1/analytics/learner/alice', 405],
    ['POST', '/api/nope', 404],
  ] as const) {
    const res = await h.app.inject({ method, url, headers: { 'content-type': 'application/json' }, payload: '{' })
    t.equal(res.statusCode, expected, `${method} ${url} with a broken body`)
  }
})

t.test('malformed URLs and over-long path parameters are coded 400s', async (t) => {
  const h = await build(t)
  for (const url of [`/api/v1/orgs/${'a'.repeat(600)}/users/b/progress`, '/api/v1/orgs/%E0%A4%A/users/b/progress']) {
    const res = await h.app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 400)
    t.equal(res.json().code, 'INVALID_PARAMS')
    t.equal(res.headers['x-client-queue-lag'], '0', 'with the headers every answer carries')
    t.ok(res.headers['x-request-id'])
  }
})

t.test('the secret the tests use is the one tokens are checked against', async (t) => {
  // Guards the fixture above: a token signed with TEST_SECRET is accepted.
  const h = await build(t)
  const res = await h.app.inject({ method: 'GET', url: '/api/v1/progress/me', headers: { authorization: `Bearer ${await h.token('alice')}` } })
  t.equal(res.statusCode, 200)
  t.ok(TEST_SECRET.length >= 32)
})

t.test("what Node's HTTP parser refuses is answered with the catalogue's body too", async (t) => {
  const h = await build(t)
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = h.app.server.address() as net.AddressInfo
  /** Everything the server sends back to `bytes` until it closes the connection. */
  const rawAnswer = (bytes: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes))
      let text = ''
      socket.on('data', (chunk) => (text += chunk))
      socket.on('error', reject)
      socket.on('close', () => resolve(text))
    })
  /** One answer's status line, headers and body. */
  const exchange = async (bytes: string) => {
    const [head = '', body = ''] = (await rawAnswer(bytes)).split('\r\n\r\n')
    return { status: Number(head.split(' ')[1]), headers: head.toLowerCase(), body: JSON.parse(body) as Record<string, unknown> }
  }
  const bigHeader = `GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`
  for (const [name, bytes, status, code] of [
    ['headers over 16 KB', bigHeader, 431, 'HEADERS_TOO_LARGE'],
    ['bytes that are not HTTP', 'NOT HTTP AT ALL\r\n\r\n', 400, 'MALFORMED_REQUEST'],
  ] as const) {
    const answer = await exchange(bytes)
    t.equal(answer.status, status, name)
    t.same(Object.keys(answer.body).sort(), ['code', 'error', 'message', 'statusCode'], `${name}: the uniform body`)
    t.match(answer.body, { statusCode: status, code }, name)
    t.match(answer.headers, /\r\nx-request-id: [\w-]{36}\r\n/, `${name}: a request id`)
    t.match(answer.headers, /\r\nx-client-queue-lag: 0\r\n/, `${name}: the lag advice`)
  }
  // Pipelined behind a batch still being written, a refusal waits for that batch's answer.
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice'])
  const token = await h.token('alice')
  const body = JSON.stringify({ events: [progressEvent()] })
  const post = `POST ${BATCH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  const pipelined = await rawAnswer(post + 'GARBAGE\r\n\r\n')
  const statuses = [...pipelined.matchAll(/HTTP\/1\.1 (\d+) /g)].map((match) => Number(match[1]))
  t.same(statuses, [200, 400], 'the batch is answered 200, then the garbage 400, in order')
  t.match(pipelined, /"accepted":1/)
  t.match(pipelined, /"code":"MALFORMED_REQUEST"/)

  // Node answers a request too slow to arrive only after its 30 s check: the handler is driven directly.
  h.app.server.once('connection', (serverSide: net.Socket) => {
    h.app.server.emit('clientError', Object.assign(new Error('timed out'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), serverSide)
  })
  const text = await rawAnswer('')
  t.match(text, /^HTTP\/1\.1 408 Request Timeout\r\n/)
  t.match(JSON.parse(text.split('\r\n\r\n')[1]!), { statusCode: 408, code: 'REQUEST_TIMEOUT' })
})

t.test('a body its client stopped sending is the client\'s error, not a database outage', async (t) => {
  // What Fastify hands the error handler when the request stream errors
  // (content-type-parser marks it 400); postgres.js's resets carry no status.
  const aborted = Object.assign(new Error('aborted'), { code: 'ECONNRESET', statusCode: 400 }) as FastifyError
  t.equal(toCodedError(aborted, 1).code, 'MALFORMED_REQUEST')
  const databaseReset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) as FastifyError
  t.equal(toCodedError(databaseReset, 1).code, 'DATABASE_UNAVAILABLE')
})
