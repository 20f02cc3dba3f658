// End-to-end harness for the browser SDK: the real API on a fresh database,
// listening on 127.0.0.1, serving a test page and the built bundle from the
// same origin, driven by Debian's headless Chromium (never downloaded).
// The server side records every ingestion request so tests can assert what
// the browser actually sent.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import type { Test } from 'tap'
import { buildApp, type AppConfig } from '../../src/api/app.ts'
import { errorBody } from '../../src/api/error-handler.ts'
import { mintToken } from '../../src/auth/tokens.ts'
import type { IngestClient, IngestClientOptions, Stream } from '../../src/client/types.ts'
import type { Sql } from '../../src/db/pool.ts'
import { buildSdk } from '../../scripts/build-sdk.ts'
import { seedOrg, TEST_SECRET, testConfig, testDatabase, testPool } from '../helper.ts'

export const CHROMIUM_PATH = '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
]

const ROUTES: Record<string, Stream> = {
  '/api/client/progress/batch': 'progress',
  '/api/analytics/events/batch': 'analytics',
}

let built: ReturnType<typeof buildSdk> | undefined
/** Builds dist/sdk once per test process (dist/ is not committed). */
export const ensureSdk = () => (built ??= buildSdk())

export async function launchBrowser(t: Test): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  return browser
}

/** One ingestion request as the server's socket saw it. */
export interface SeenRequest {
  stream: Stream
  arrivedAt: number
  finishedAt?: number
  status?: number
  depth: string | undefined
}

/** One ingestion request whose body the server parsed. */
export interface SeenBatch {
  stream: Stream
  status: number
  eventIds: string[]
  sentAt: string | undefined
  respondedAt: number
}

export interface Refusal {
  status: 429 | 503
  retryAfter: string
}

export interface Recorder {
  requests: SeenRequest[]
  batches: SeenBatch[]
  maxInFlight: Record<Stream, number>
  /** eventId -> how many 200 responses carried it. */
  okCount: Map<string, number>
  /** Overrides X-Client-Queue-Lag on every ingestion response when set. */
  lagMs: number | undefined
  /** Answers an (authenticated) ingestion request with this instead of handling it. */
  refuse: ((stream: Stream) => Refusal | undefined) | undefined
  /** Holds every ingestion request this long: a slow server. */
  delayMs: number
}

export interface Site {
  origin: string
  sql: Sql
  recorder: Recorder
  token(userId: string): Promise<string>
  /** Stops listening and drops every connection: the browser sees connection refused. */
  down(): Promise<void>
  /** Listens again on the same port. */
  up(): Promise<void>
}

const TEST_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>sdk test page</title>
<script type="module">
import * as sdk from '/sdk/ingest-client.js'
window.sdk = sdk
window.rejections = []
const params = new URLSearchParams(location.search)
const token = params.get('token')
if (token) {
  window.client = sdk.createIngestClient({
    endpoint: location.origin,
    getToken: () => token,
    onRejected: (stream, list) => window.rejections.push(...list.map((r) => ({ stream, ...r }))),
    ...JSON.parse(params.get('options') || '{}'),
  })
}
window.ready = true
</script>`

export type PageWindow = typeof globalThis & {
  client: IngestClient
  sdk: { createIngestClient(options: IngestClientOptions): IngestClient }
  rejections: { stream: Stream; eventId?: string; code: string; message: string }[]
  ready: boolean
}

/** The API on a fresh database, org-a with course-1 (5 lessons) and learners alice and bob. */
export async function startSite(t: Test, overrides: Partial<AppConfig> = {}): Promise<Site> {
  await ensureSdk()
  const url = await testDatabase(t)
  const app = await buildApp({ config: { ...testConfig, ...overrides }, databaseUrl: url })
  const recorder: Recorder = {
    requests: [], batches: [], maxInFlight: { progress: 0, analytics: 0 }, okCount: new Map(), lagMs: undefined, refuse: undefined, delayMs: 0,
  }
  const inFlight: Record<Stream, number> = { progress: 0, analytics: 0 }

  // At the socket, before any Fastify hook: every request counts, even one
  // refused by auth or the rate limit.
  app.server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => {
    const stream = ROUTES[request.url ?? '']
    if (!stream || request.method !== 'POST') return
    const seen: SeenRequest = { stream, arrivedAt: Date.now(), depth: request.headers['x-client-queue-depth'] as string | undefined }
    recorder.requests.push(seen)
    recorder.maxInFlight[stream] = Math.max(recorder.maxInFlight[stream], ++inFlight[stream])
    response.once('close', () => {
      inFlight[stream]--
      seen.finishedAt = Date.now()
      seen.status = response.statusCode
    })
  })
  app.addHook('onRequest', async (request, reply) => {
    const stream = ROUTES[request.url]
    if (stream && recorder.delayMs > 0) await sleep(recorder.delayMs)
    const refusal = stream ? recorder.refuse?.(stream) : undefined
    if (!refusal) return
    const code = refusal.status === 429 ? 'RATE_LIMITED' : 'OVERLOADED'
    return reply
      .code(refusal.status)
      .header('retry-after', refusal.retryAfter)
      .send(errorBody(refusal.status, code, `test refusal: retry in ${refusal.retryAfter} seconds`))
  })
  app.addHook('onSend', async (request, reply) => {
    if (recorder.lagMs !== undefined && ROUTES[request.url]) reply.header('x-client-queue-lag', String(recorder.lagMs))
  })
  app.addHook('onResponse', async (request, reply) => {
    const stream = ROUTES[request.url]
    const body = request.body as { events?: { eventId?: string }[]; sentAt?: string } | undefined
    if (!stream || !Array.isArray(body?.events)) return
    const eventIds = body.events.map((event) => String(event.eventId))
    recorder.batches.push({ stream, status: reply.statusCode, eventIds, sentAt: body.sentAt, respondedAt: Date.now() })
    if (reply.statusCode === 200) for (const id of eventIds) recorder.okCount.set(id, (recorder.okCount.get(id) ?? 0) + 1)
  })
  app.get('/test/page', { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').send(TEST_PAGE),
  )

  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  let listening = true
  const up = async () => {
    if (listening) return
    await new Promise<void>((resolve, reject) => {
      app.server.once('error', reject)
      app.server.listen(port, '127.0.0.1', () => {
        app.server.off('error', reject)
        resolve()
      })
    })
    listening = true
  }
  t.teardown(async () => {
    await up()
    await app.close()
  })
  const sql = testPool(t, url)
  await seedOrg(sql, 'org-a', [{ courseId: 'course-1', lessonCount: 5 }], ['alice', 'bob'])
  return {
    origin: `http://127.0.0.1:${port}`,
    sql,
    recorder,
    token: (userId) => mintToken(TEST_SECRET, { userId, orgId: 'org-a' }),
    async down() {
      const closed = new Promise<void>((resolve) => app.server.close(() => resolve()))
      app.server.closeAllConnections()
      await closed
      listening = false
    },
    up,
  }
}

/** Opens the test page; with a token, the page creates window.client with these options. */
export async function openPage(context: BrowserContext, site: Site, token?: string, options: Partial<IngestClientOptions> = {}): Promise<Page> {
  const page = await context.newPage()
  const query = new URLSearchParams(token ? { token, options: JSON.stringify(options) } : {})
  await page.goto(`${site.origin}/test/page?${query}`)
  await page.waitForFunction(() => (window as unknown as PageWindow).ready === true)
  return page
}

/**
 * Tracks `progress` progress events and `analytics` analytics events,
 * interleaved, resolving when all are stored. spreadMs > 0 spaces them out.
 */
export function trackMany(page: Page, counts: { progress?: number; analytics?: number; spreadMs?: number; tag?: string }): Promise<string[]> {
  return page.evaluate(async ({ progress = 0, analytics = 0, spreadMs = 0, tag = 'e2e' }) => {
    const { client } = window as unknown as PageWindow
    const kinds: ('progress' | 'analytics')[] = []
    for (let i = 0; i < Math.max(progress, analytics); i++) {
      if (i < progress) kinds.push('progress')
      if (i < analytics) kinds.push('analytics')
    }
    const stored: Promise<string>[] = []
    for (const [i, kind] of kinds.entries()) {
      stored.push(
        kind === 'progress'
          ? client.trackProgress({ courseId: 'course-1', lessonId: `lesson-${(i % 5) + 1}`, type: 'lesson_progress', progress: i % 101, timeSpentMs: 1000 })
          : client.track(`${tag}.view`, { i }, { courseId: 'course-1' }),
      )
      if (spreadMs > 0) await new Promise((resolve) => setTimeout(resolve, spreadMs))
    }
    return Promise.all(stored)
  }, counts)
}

export async function storedCounts(sql: Sql): Promise<{ progress: number; analytics: number; distinct: number }> {
  const [row] = await sql<{ progress: number; analytics: number; distinct: number }[]>`
    select (select count(*)::int from progress_events) as progress,
           (select count(*)::int from analytics_events) as analytics,
           (select count(distinct event_id)::int from (select event_id from progress_events union all select event_id from analytics_events) e) as distinct`
  return row!
}

/** Polls until check() is true; fails the wait (not the process) after timeoutMs. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Event ids the server answered 200 for more than once (a send that was not exactly once). */
export const resent = (recorder: Recorder) => [...recorder.okCount].filter(([, count]) => count > 1).map(([id]) => id)
