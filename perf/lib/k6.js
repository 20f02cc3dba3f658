// What the k6 scenarios share: options from -e, HS256 tokens signed here with
// k6/crypto (one per learner, the same in every VU), the batch POST, and thresholds.
import crypto from 'k6/crypto'
import encoding from 'k6/encoding'
import exec from 'k6/execution'
import http from 'k6/http'
import { Rate } from 'k6/metrics'
import { DEMO_ORG } from './activity.js'

function number(name, fallback, { integer = false } = {}) {
  const raw = __ENV[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0 || (integer && !/^\d+$/.test(raw))) {
    throw new Error(`-e ${name} must be a positive ${integer ? 'whole ' : ''}number (got ${raw})`)
  }
  return value
}

/** Every option a scenario reads, with the contract's defaults. */
export function settings(defaults = {}) {
  const secret = __ENV.AUTH_JWT_SECRET
  if (!secret) throw new Error('-e AUTH_JWT_SECRET=... is required: the scenarios sign their own learner tokens')
  const rate = number('RATE', defaults.rate ?? 500)
  return {
    baseUrl: (__ENV.BASE_URL || 'http://127.0.0.1:3000').replace(/\/$/, ''),
    secret,
    rate,
    duration: __ENV.DURATION || defaults.duration || '2m',
    eventsPerBatch: number('EVENTS_PER_BATCH', 10, { integer: true }),
    learners: number('LEARNERS', 5000, { integer: true }),
    courses: number('COURSES', 4, { integer: true }),
    // Claims the deployment checks (its AUTH_ISSUER and AUTH_AUDIENCE), if any.
    issuer: __ENV.AUTH_ISSUER || undefined,
    audience: __ENV.AUTH_AUDIENCE || undefined,
    // VUs: a constant arrival rate needs rate x latency of them. Enough are
    // made up front for a 200 ms hiccup, because a VU made mid-run takes long
    // enough to start that k6 drops iterations meanwhile (counted against the
    // service); the cap bounds k6's own memory under overload.
    preAllocatedVUs: number('PRE_VUS', Math.min(200, Math.max(20, Math.ceil(rate / 5))), { integer: true }),
    maxVUs: number('MAX_VUS', Math.min(1000, Math.max(200, rate)), { integer: true }),
    p95Ms: number('P95_MS', defaults.p95Ms ?? 10),
    p99Ms: number('P99_MS', defaults.p99Ms ?? 25),
  }
}

const HEADER = encoding.b64encode(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), 'rawurl')
const TOKEN_TTL_S = 24 * 3600
// A learner's next batch goes to the same VU about once in as many batches
// as there are VUs, so a bigger cache hardly ever hits and only grows k6's
// heap through a run, which its collector marks every few seconds on the
// cores the service uses (docs/performance.md, "What sets the stalls off").
const TOKENS_KEPT_PER_VU = 64
const tokens = new Map()

/**
 * A learner token of org demo, signed with AUTH_JWT_SECRET and kept by the VU (a few).
 * A browser keeps its token for the session, so every VU must send a learner
 * the same one: `iat` is the start of the hour, not the VU's clock (each VU
 * minting its own would make the API verify a new token on almost every
 * request, which no real client causes).
 */
export function tokenFor(s, learner) {
  let token = tokens.get(learner)
  if (token === undefined) {
    const issuedAt = Math.floor(Date.now() / 3600000) * 3600
    const claims = {
      sub: `learner-${learner}`,
      org_id: DEMO_ORG,
      role: 'learner',
      iat: issuedAt,
      exp: issuedAt + TOKEN_TTL_S,
      ...(s.issuer ? { iss: s.issuer } : {}),
      ...(s.audience ? { aud: s.audience } : {}),
    }
    const unsigned = `${HEADER}.${encoding.b64encode(JSON.stringify(claims), 'rawurl')}`
    token = `${unsigned}.${crypto.hmac('sha256', s.secret, unsigned, 'base64rawurl')}`
    if (tokens.size >= TOKENS_KEPT_PER_VU) tokens.clear()
    tokens.set(learner, token)
  }
  return token
}

/**
 * The running scenario, read once per VU. Each read of `exec.scenario` builds
 * a new object (14 to 19 us in k6 1.8, against 1 us to read a property of one
 * kept), and that object's properties stay live: `iterationInTest` counts on.
 * Make one per scenario function.
 */
export function currentScenario() {
  let scenario
  return () => (scenario ??= exec.scenario)
}

/**
 * The share of events in sampled 200 answers that were not stored (deferred or
 * rejected): a 200 alone does not say the events landed. It catches a LEARNERS
 * beyond what seed:demo assigned (deferred), or a k6 clock a day off (in_future).
 */
export const eventsNotStored = new Rate('events_not_stored')
// About this many answers a second are read, at random (all of them at lower
// rates): reading every body at the knee would cost k6 CPU on the cores it
// shares with the service.
const ANSWERS_READ_PER_SECOND = 100

/** POSTs one batch as the learner: `eventsJson` is the JSON text of its `s.eventsPerBatch` events; `tags` label the request's metrics. */
export function postBatch(s, path, learner, eventsJson, tags = {}) {
  const readAnswer = Math.random() * s.rate < ANSWERS_READ_PER_SECOND
  const res = http.post(`${s.baseUrl}${path}`, `{"events":${eventsJson},"sentAt":"${new Date().toISOString()}"}`, {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenFor(s, learner)}` },
    tags,
    ...(readAnswer ? { responseType: 'text' } : {}),
  })
  if (readAnswer && res.status === 200) {
    const { accepted, duplicates } = res.json()
    const stored = accepted + duplicates
    for (let i = 0; i < s.eventsPerBatch; i++) eventsNotStored.add(i >= stored, tags)
  }
  return res
}

export const PROGRESS_PATH = '/api/client/progress/batch'
export const ANALYTICS_PATH = '/api/analytics/events/batch'

/** The contract's service-level thresholds: latency, no failures, no dropped iterations, every event stored. */
export function serviceThresholds(s) {
  return {
    http_req_duration: [`p(95)<${s.p95Ms}`, `p(99)<${s.p99Ms}`],
    http_req_failed: ['rate==0'],
    dropped_iterations: ['count==0'],
    events_not_stored: ['rate==0'],
  }
}

export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max']
