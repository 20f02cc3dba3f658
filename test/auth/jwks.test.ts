// Tokens from an identity provider (AUTH_JWKS_URL), against a real JWKS
// endpoint on 127.0.0.1: RS256 and ES256 with issuer and audience checks; an
// unreachable or broken key set is 503 with Retry-After and one warning, not a
// 401, so the SDK keeps the events and retries; an unknown kid is a 401 that
// says so, and a key rotated in is accepted after the cooldown.
import http from 'node:http'
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/api/app.ts'
import { JWKS_COOLDOWN_MS, JWKS_TIMEOUT_MS } from '../../src/auth/jwks.ts'
import { BATCH, captureLog, sleep } from '../api/edge-helper.ts'
import { progressEvent, seedOrg, testConfig, testDatabase, testPool } from '../helper.ts'

const ISSUER = 'https://idp.example'
const AUDIENCE = 'learning-events'

/** A JWKS endpoint whose answer the test sets (`respond`), counting the fetches. */
async function identityProvider(t: Test) {
  const idp = { url: '', fetches: 0, respond: (_res: http.ServerResponse): void => {} }
  const server = http.createServer((_req, res) => {
    idp.fetches++
    idp.respond(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections() // the hanging answers
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  idp.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`
  return idp
}

const json = (body: string, status = 200) => (res: http.ServerResponse) => {
  res.statusCode = status
  res.setHeader('content-type', 'application/json').end(body)
}
const serveKeys = (...keys: JWK[]) => json(JSON.stringify({ keys }))

async function signingKey(alg: 'RS256' | 'ES256', kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg)
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  const sign = (claims: { iss?: string; aud?: string } = {}, key = privateKey) =>
    new SignJWT({ role: 'learner' })
      .setProtectedHeader({ alg, kid })
      .setSubject('alice')
      .setIssuer(claims.iss ?? ISSUER)
      .setAudience(claims.aud ?? AUDIENCE)
      .setExpirationTime('5m')
      .sign(key)
  return { jwk, sign }
}

/** The API trusting only `jwksUrl` (no HS256 secret), with alice assigned a course so that an accepted batch writes a row. */
async function buildWithJwks(t: Test, jwksUrl: string) {
  const url = await testDatabase(t)
  const log = captureLog()
  const { AUTH_JWT_SECRET: _secret, ...withoutSecret } = testConfig
  const app = await buildApp({
    config: { ...withoutSecret, LOG_LEVEL: 'warn', AUTH_JWKS_URL: jwksUrl, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE },
    databaseUrl: url,
    logStream: log,
    edge: { processMetrics: false },
  })
  t.teardown(() => app.close())
  const sql = testPool(t, url)
  await seedOrg(sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const send = (method: 'GET' | 'POST', route: string) => (token: string) =>
    app.inject({ method, url: route, headers: { authorization: `Bearer ${token}` }, ...(method === 'POST' ? { payload: { events: [progressEvent()] } } : {}) })
  return {
    log,
    post: send('POST', BATCH),
    me: send('GET', '/api/v1/progress/me'),
    stored: async () => (await sql<{ n: number }[]>`select count(*)::int as n from progress_events`)[0]!.n,
  }
}

t.test('RS256 and ES256 tokens from a JWKS endpoint, with issuer and audience checks', async (t) => {
  const idp = await identityProvider(t)
  const rsa = await signingKey('RS256', 'rsa-1')
  const ec = await signingKey('ES256', 'ec-1')
  idp.respond = serveKeys(rsa.jwk, ec.jwk)
  const h = await buildWithJwks(t, idp.url)

  const accepted = await h.post(await rsa.sign())
  t.equal(accepted.statusCode, 200, 'RS256')
  t.equal(await h.stored(), 1, 'the batch was written')
  t.equal((await h.me(await ec.sign())).statusCode, 200, 'ES256')
  t.equal((await h.me(await rsa.sign({ iss: 'https://evil.example' }))).statusCode, 401, 'wrong issuer')
  t.equal((await h.me(await rsa.sign({ aud: 'someone-else' }))).statusCode, 401, 'wrong audience')
  const other = await generateKeyPair('RS256')
  const forged = await h.me(await rsa.sign({}, other.privateKey))
  t.equal(forged.statusCode, 401, 'a known kid, signed by another key')
  t.match(forged.json().message, /signature is invalid/)
  const hs = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('5m').sign(new TextEncoder().encode('x'.repeat(40)))
  t.equal((await h.me(hs)).statusCode, 401, 'HS256 is refused when no secret is configured')
  t.equal(idp.fetches, 1, 'the key set was fetched once')
  t.same(h.log.lines.filter((line) => line.level === 40), [], 'bad tokens log no warning')
})

/** A port nothing listens on: one that was just free. */
async function closedPort(): Promise<number> {
  const server = http.createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

const OUTAGES: { name: string; respond?: (res: http.ServerResponse) => void }[] = [
  { name: 'the endpoint hangs', respond: () => {} },
  { name: 'the endpoint answers 500', respond: json('{"error":"internal"}', 500) },
  { name: 'the body is not JSON', respond: (res) => res.end('<html>502 Bad Gateway</html>') },
  { name: 'the body is JSON but not a key set', respond: json('{"keys":"none"}') },
  { name: 'the key set is empty', respond: serveKeys() },
  { name: 'the port is closed' },
]

for (const outage of OUTAGES) {
  t.test(`identity provider down (${outage.name}): 503 with Retry-After, nothing written, one warning`, async (t) => {
    let url = `http://127.0.0.1:${await closedPort()}/jwks.json`
    if (outage.respond) {
      const idp = await identityProvider(t)
      idp.respond = outage.respond
      url = idp.url
    }
    const h = await buildWithJwks(t, url)
    const token = await (await signingKey('RS256', 'rsa-1')).sign()

    const started = Date.now()
    const answers = await Promise.all([h.post(token), h.post(token)])
    const elapsed = Date.now() - started
    for (const res of answers) {
      t.equal(res.statusCode, 503)
      t.equal(res.headers['retry-after'], '2')
      t.same(res.json(), { statusCode: 503, code: 'IDENTITY_PROVIDER_UNAVAILABLE', error: 'Service Unavailable', message: 'Identity provider keys could not be fetched: retry in 2 seconds' })
    }
    t.ok(elapsed < JWKS_TIMEOUT_MS + 1000, `answered in ${elapsed} ms (the fetch timeout is ${JWKS_TIMEOUT_MS} ms)`)
    t.equal(await h.stored(), 0, 'nothing was written')

    const warnings = h.log.lines.filter((line) => line.level === 40)
    t.equal(warnings.length, 1, 'one warning for both refused requests')
    t.match(warnings[0]?.msg, outage.name === 'the key set is empty' ? /key set at .* is empty/ : /identity provider keys could not be fetched from http:\/\/127\.0\.0\.1/)
    t.match(warnings[0], { err: { message: String }, refusedSinceLastWarning: 1 }, 'with its cause')
    t.same(h.log.lines.filter((line) => (line.level as number) >= 50), [], 'and no error lines')
  })
}

t.test('identity provider back: the next token is verified, no restart', async (t) => {
  const idp = await identityProvider(t)
  idp.respond = json('', 503)
  const h = await buildWithJwks(t, idp.url)
  const rsa = await signingKey('RS256', 'rsa-1')
  const token = await rsa.sign()
  t.equal((await h.post(token)).statusCode, 503)
  idp.respond = serveKeys(rsa.jwk)
  t.equal((await h.post(token)).statusCode, 200, 'the same token, retried')
  t.equal(await h.stored(), 1)
})

t.test('an unknown kid is a 401 that says so; a key rotated in is accepted after the cooldown', async (t) => {
  const idp = await identityProvider(t)
  const current = await signingKey('RS256', 'rsa-1')
  const next = await signingKey('RS256', 'rsa-2')
  idp.respond = serveKeys(current.jwk)
  const h = await buildWithJwks(t, idp.url)
  t.equal((await h.me(await current.sign())).statusCode, 200)

  const early = await h.me(await next.sign())
  t.equal(early.statusCode, 401, 'a kid the fetched key set does not hold')
  t.same(early.json(), {
    statusCode: 401,
    code: 'UNAUTHORIZED',
    error: 'Unauthorized',
    message: "Authentication required: token key id (kid) is unknown: the identity provider's key set has no matching key",
  })

  idp.respond = serveKeys(current.jwk, next.jwk) // the provider rotates
  const token = await next.sign()
  t.equal((await h.me(token)).statusCode, 401, 'within the cooldown the key set is not fetched again')
  t.equal(idp.fetches, 1)
  await sleep(JWKS_COOLDOWN_MS + 100)
  t.equal((await h.me(token)).statusCode, 200, `accepted once ${JWKS_COOLDOWN_MS} ms have passed`)
  t.equal(idp.fetches, 2)
  t.equal((await h.me(await (await signingKey('RS256', 'made-up')).sign())).statusCode, 401)
  t.equal(idp.fetches, 2, 'made-up kids fetch nothing within the cooldown')
  t.same(h.log.lines.filter((line) => line.level === 40), [], 'unknown kids log no warning')
})
