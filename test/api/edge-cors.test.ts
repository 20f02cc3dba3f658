// CORS for browser clients: allowed origins get a cached preflight (no token
// needed) and can read the lag, retry and rate-limit headers; any other origin
// gets no CORS headers at all.
import t from 'tap'
import { parseOrigins } from '../../src/api/plugins/cors.ts'
import { loadConfig } from '../../src/config.ts'
import { seedOrg } from '../helper.ts'
import { BATCH, buildEdge } from './edge-helper.ts'

const ALLOWED = 'https://learn.example.com'
const corsHeaders = (headers: Record<string, unknown>) => Object.keys(headers).filter((name) => name.startsWith('access-control-'))

const preflight = (origin: string) => ({
  method: 'OPTIONS' as const,
  url: BATCH,
  headers: {
    origin,
    'access-control-request-method': 'POST',
    'access-control-request-headers': 'authorization, content-type, x-client-queue-depth',
  },
})

t.test('a preflight from an allowed origin needs no token, is cached, and exposes the lag header', async (t) => {
  const h = await buildEdge(t, { config: { CORS_ORIGINS: `${ALLOWED}, http://localhost:5173` } })
  const res = await h.app.inject(preflight(ALLOWED))
  t.equal(res.statusCode, 204, 'not 401: preflights carry no token')
  t.equal(res.headers['access-control-allow-origin'], ALLOWED)
  t.equal(res.headers['access-control-max-age'], '600', 'browsers cache the preflight')
  t.equal(res.headers['x-client-queue-lag'], '0', 'a preflight is a response too: it carries the lag advice')
  const exposed = String(res.headers['access-control-expose-headers']).toLowerCase().split(/,\s*/)
  for (const name of ['x-client-queue-lag', 'retry-after', 'x-request-id', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']) {
    t.ok(exposed.includes(name), `exposes ${name}`)
  }
  const allowed = String(res.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/)
  for (const name of ['authorization', 'content-type', 'x-client-queue-depth', 'x-request-id']) t.ok(allowed.includes(name), `allows ${name}`)
  t.match(String(res.headers['access-control-allow-methods']), /POST/)
  t.match(String(res.headers.vary), /Origin/i, 'caches keep answers for different origins apart')

  const other = await h.app.inject(preflight('http://localhost:5173'))
  t.equal(other.headers['access-control-allow-origin'], 'http://localhost:5173', 'every listed origin is allowed')
})

t.test('a disallowed origin gets no CORS headers, on preflights and on requests', async (t) => {
  const h = await buildEdge(t, { config: { CORS_ORIGINS: ALLOWED } })
  const res = await h.app.inject(preflight('https://evil.example.net'))
  t.same(corsHeaders(res.headers), [], 'no access-control-* header on the preflight')
  t.not(res.statusCode, 401, 'still not a 401')
  t.equal(res.json().code, 'METHOD_NOT_ALLOWED', 'a coded answer: no route takes OPTIONS')
  t.equal(res.headers.allow, 'POST', 'the methods the path takes')
  const unknown = await h.app.inject({ method: 'GET', url: '/api/nope', headers: { origin: ALLOWED } })
  t.equal(unknown.statusCode, 404, 'a path no route has is a 404 though CORS answers preflights everywhere')

  const token = await h.token('alice')
  const post = await h.post(token, undefined, { origin: 'https://evil.example.net' })
  t.same(corsHeaders(post.headers), [], 'no access-control-* header on the request')
  const noOrigin = await h.post(token)
  t.same(corsHeaders(noOrigin.headers), [], 'none without an Origin either (server-to-server)')
})

t.test('actual requests from an allowed origin carry CORS headers, errors included', async (t) => {
  const h = await buildEdge(t, { config: { CORS_ORIGINS: ALLOWED, RATE_LIMIT_BATCHES_PER_SECOND: 1 } })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const token = await h.token('alice')
  const origin = { origin: ALLOWED }
  const ok = await h.post(token, undefined, origin)
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers['access-control-allow-origin'], ALLOWED)
  t.match(String(ok.headers['access-control-expose-headers']), /X-Client-Queue-Lag/)
  const limited = await h.post(token, undefined, origin)
  t.equal(limited.statusCode, 429)
  t.equal(limited.headers['access-control-allow-origin'], ALLOWED, 'the SDK can read a 429 and its Retry-After')
  const unauthorized = await h.app.inject({ method: 'POST', url: BATCH, headers: origin, payload: { events: [] } })
  t.equal(unauthorized.statusCode, 401)
  t.equal(unauthorized.headers['access-control-allow-origin'], ALLOWED, 'and a 401')
})

t.test('CORS_ORIGINS=* allows any origin; unset turns CORS off', async (t) => {
  const any = await buildEdge(t, { config: { CORS_ORIGINS: '*' } })
  const res = await any.app.inject(preflight('https://anything.example.org'))
  t.equal(res.statusCode, 204)
  t.equal(res.headers['access-control-allow-origin'], '*')

  const off = await buildEdge(t)
  const none = await off.app.inject(preflight(ALLOWED))
  t.same(corsHeaders(none.headers), [])
  t.equal(none.statusCode, 405, 'no route takes OPTIONS')
})

t.test('CORS_ORIGINS is validated at start and parsed', async (t) => {
  t.same(parseOrigins(' https://a.example.com, http://localhost:5173 ,'), ['https://a.example.com', 'http://localhost:5173'])
  t.same(parseOrigins(undefined), [])
  t.equal(loadConfig({ CORS_ORIGINS: 'https://a.example.com,*' }).CORS_ORIGINS, 'https://a.example.com,*')
  t.throws(() => loadConfig({ CORS_ORIGINS: 'a.example.com' }), /CORS_ORIGINS/)
  t.throws(() => loadConfig({ CORS_ORIGINS: 'https://a.example.com/path' }), /CORS_ORIGINS/)
})
