// Shared pieces of the fault-injection suite (docs/reliability.md): the size
// knob, a real API process that can be killed and restarted, a retrying client
// that keeps its eventIds stable, RSS sampling from /proc, and the checks that
// the database holds exactly the events that were sent.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomInt, randomUUID } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'
import { mintToken } from '../../src/auth/tokens.ts'
import { openEmbedded, type EmbeddedServer } from '../../src/db/embedded.ts'
import { migrate } from '../../src/db/migrate.ts'
import { createPool, type Sql } from '../../src/db/pool.ts'
import { TEST_SECRET } from '../helper.ts'

const root = path.resolve(import.meta.dirname, '../..')

// ---------------------------------------------------------------- size knob

export type Scale = 'ci' | 'full'

function readScale(): Scale {
  const given = process.env.RELIABILITY_SCALE ?? 'ci'
  if (given !== 'ci' && given !== 'full') throw new Error(`RELIABILITY_SCALE must be ci or full, got ${JSON.stringify(given)}`)
  return given
}

/** `ci` (default) is small enough for `npm test`; `full` is `npm run test:reliability`. */
export const SCALE: Scale = readScale()

export const sized = <T>(sizes: Record<Scale, T>): T => sizes[SCALE]

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls until `check` is true; throws after `timeoutMs` so a scenario never hangs. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 25): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits

/** One machine-readable line of figures per scenario (docs/reliability.md quotes them). */
export function reportFigures(t: Test, scenario: string, figures: Record<string, unknown>): void {
  t.comment(`reliability figures ${scenario} (${SCALE}): ${JSON.stringify(figures)}`)
}

// ---------------------------------------------------------------- API process

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Resident set size of a process in bytes, from /proc; undefined once it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

const children = new Set<ChildProcess>()
// Never leave an API process behind, whatever way this test process ends.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

export interface ApiOptions {
  databaseUrl: string
  /** Extra environment for the process (PORT, DATABASE_URL and the secret are set here). */
  env?: Record<string, string>
}

/**
 * `node src/bin/api.ts` as a child process on a fixed loopback port, so that a
 * restarted process answers at the same URL as the one that was killed.
 */
export class ApiProcess {
  readonly port: number
  readonly url: string
  readonly #options: ApiOptions
  #child: ChildProcess | undefined
  #exited: Promise<void> = Promise.resolve()
  #output = ''
  /** How many times the process was started. */
  starts = 0

  private constructor(port: number, options: ApiOptions) {
    this.port = port
    this.url = `http://127.0.0.1:${port}`
    this.#options = options
  }

  /** Starts the API and waits until /api/health answers 200; stopped when the test ends. */
  static async start(t: Test, options: ApiOptions): Promise<ApiProcess> {
    const api = new ApiProcess(await freePort(), options)
    t.teardown(() => api.stop())
    await api.#spawn()
    return api
  }

  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** The last lines the process wrote (warnings and errors; LOG_LEVEL=warn). */
  get output(): string {
    return this.#output
  }

  rssBytes(): number | undefined {
    return this.pid === undefined ? undefined : rssBytes(this.pid)
  }

  async #spawn(): Promise<void> {
    const child = spawn(process.execPath, ['src/bin/api.ts'], {
      cwd: root,
      env: {
        ...process.env,
        DATA_DIR: path.join(os.tmpdir(), 'learning-events-reliability'),
        DATABASE_URL: this.#options.databaseUrl,
        AUTH_JWT_SECRET: TEST_SECRET,
        HOST: '127.0.0.1',
        PORT: String(this.port),
        LOG_LEVEL: 'warn',
        // The scenarios measure faults, not the per-user limit (test/api covers it).
        RATE_LIMIT_BATCHES_PER_SECOND: '100000',
        ...this.#options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.add(child)
    this.starts++
    this.#child = child
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString()).slice(-16384)
    }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    this.#exited = new Promise((resolve) =>
      child.once('exit', () => {
        children.delete(child)
        resolve()
      }),
    )
    let exited = false
    void this.#exited.then(() => (exited = true))
    await waitFor(
      'the API to answer /api/health',
      async () => {
        if (exited) throw new Error(`the API exited during start (code ${child.exitCode}):\n${this.#output}`)
        try {
          return (await fetch(`${this.url}/api/health`, { signal: AbortSignal.timeout(2000) })).status === 200
        } catch {
          return false
        }
      },
      60000, // a loaded 2-core machine can take 15 s to start Node and connect
      100,
    )
  }

  /** kill -9: no drain, no shutdown hooks; in-flight requests get a reset connection. */
  async kill9(): Promise<void> {
    this.#child?.kill('SIGKILL')
    await this.#exited
  }

  /** Starts a new process on the same port (after kill9). */
  async restart(): Promise<void> {
    await this.#exited
    await this.#spawn()
  }

  /** Graceful stop (SIGTERM drains), forced after 10 s. */
  async stop(): Promise<void> {
    const child = this.#child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000)
    await this.#exited
    clearTimeout(timer)
  }
}

/** The API's in-flight bound, as /metrics publishes it (docs/edge.md). */
export async function inFlightBound(baseUrl: string): Promise<number | undefined> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text()
  const match = /^ingest_in_flight_bound (\d+)$/m.exec(text)
  return match ? Number(match[1]) : undefined
}

/** Samples a process's RSS at a fixed interval until stopped. */
export class RssSampler {
  readonly samples: number[] = []
  readonly #timer: NodeJS.Timeout

  constructor(read: () => number | undefined, everyMs = 250) {
    const sample = () => {
      const value = read()
      if (value !== undefined) this.samples.push(value)
    }
    sample()
    this.#timer = setInterval(sample, everyMs)
  }

  stop(): number[] {
    clearInterval(this.#timer)
    return this.samples
  }
}

export const mb = (bytes: number) => round(bytes / 1048576)

// ---------------------------------------------------------------- private database server

/**
 * A PostgreSQL server of this test's own (embedded, in a temporary directory),
 * migrated, so that a scenario can stop and restart it without touching the
 * server every other test shares. Restarts reuse the port (src/db/embedded.ts).
 */
export class PrivateDatabase {
  readonly dataDir: string
  #server: EmbeddedServer

  private constructor(dataDir: string, server: EmbeddedServer) {
    this.dataDir = dataDir
    this.#server = server
  }

  static async start(t: Test): Promise<PrivateDatabase> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'learning-events-reliability-pg-'))
    fs.chmodSync(dataDir, 0o711) // the server runs as `postgres` when we are root
    const server = await openEmbedded(dataDir)
    const database = new PrivateDatabase(dataDir, server)
    t.teardown(async () => {
      await database.#server.stop()
      fs.rmSync(dataDir, { recursive: true, force: true })
    })
    const sql = createPool(server.url, { max: 1 })
    await migrate(sql, { retentionDays: 30, aheadDays: 7 })
    await sql.end()
    return database
  }

  get url(): string {
    return this.#server.url
  }

  /** pg_ctl stop -m fast: open transactions are aborted, connections closed. */
  stop(): Promise<void> {
    return this.#server.stop()
  }

  /** Starts the same cluster again, on the same port. */
  async start(): Promise<void> {
    const server = await openEmbedded(this.dataDir)
    if (server.url !== this.#server.url) throw new Error(`the database came back at another address: ${server.url}`)
    this.#server = server
  }
}

// ---------------------------------------------------------------- seeding

/** `learners` learners of one org, each assigned to every course, set-based. */
export async function seedLearners(
  sql: Sql,
  options: { orgId: string; learners: number; courses: number; lessonCount: number },
): Promise<string[]> {
  const { orgId, learners, courses, lessonCount } = options
  await sql`
    insert into courses (org_id, course_id, lesson_count)
    select ${orgId}, 'course-' || c, ${lessonCount} from generate_series(1, ${courses}::int) c`
  await sql`
    insert into assignments (org_id, user_id, course_id)
    select ${orgId}, 'learner-' || u, 'course-' || c
    from generate_series(1, ${learners}::int) u, generate_series(1, ${courses}::int) c`
  return Array.from({ length: learners }, (_, i) => `learner-${i + 1}`)
}

export function learnerTokens(userIds: string[]): Promise<string[]> {
  return Promise.all(userIds.map((userId) => mintToken(TEST_SECRET, { userId, ttl: '3h' })))
}

// ---------------------------------------------------------------- events

export interface PlannedEvent {
  eventId: string
  userId: string
  courseId: string
  lessonId: string
  type: 'lesson_started' | 'lesson_progress' | 'lesson_completed'
  progress?: number
  timeSpentMs: number
  score?: number
  occurredAt: string
}

const TYPES = ['lesson_started', 'lesson_progress', 'lesson_progress', 'lesson_progress', 'lesson_completed'] as const

export function randomProgressEvent(userId: string, courseId: string, lessons: number): PlannedEvent {
  const type = TYPES[randomInt(TYPES.length)]!
  return {
    eventId: randomUUID(),
    userId,
    courseId,
    lessonId: `lesson-${randomInt(1, lessons + 1)}`,
    type,
    ...(type === 'lesson_progress' ? { progress: randomInt(0, 10001) / 100 } : {}),
    timeSpentMs: randomInt(0, 120000),
    ...(type === 'lesson_completed' && randomInt(2) === 0 ? { score: randomInt(0, 101) } : {}),
    // Within the last two hours: inside retention, in today's or yesterday's partition.
    occurredAt: new Date(Date.now() - randomInt(1000, 7200000)).toISOString(),
  }
}

/**
 * A learner's batches, in order. From the second batch on, the first event
 * repeats one of the previous batch (same eventId and occurredAt), as a client
 * that lost a response and resends would: the set of unique events is what
 * the database must hold.
 */
export function planBatches(
  userId: string,
  options: { batches: number; eventsPerBatch: number; courseId: string; lessons: number },
): PlannedEvent[][] {
  const batches: PlannedEvent[][] = []
  for (let b = 0; b < options.batches; b++) {
    const previous = batches[b - 1]
    const batch = previous ? [previous[randomInt(previous.length)]!] : []
    while (batch.length < options.eventsPerBatch) batch.push(randomProgressEvent(userId, options.courseId, options.lessons))
    batches.push(batch)
  }
  return batches
}

// ---------------------------------------------------------------- plain HTTP

export interface PlainResponse {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
}

/**
 * One POST over node:http with a keep-alive agent: a lighter load generator
 * than fetch, which matters when it shares two cores with the API and the
 * database. Rejects on connection errors and after timeoutMs.
 */
export function postJson(agent: http.Agent, url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<PlainResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs },
      (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString() }))
        response.on('error', reject)
      },
    )
    request.on('timeout', () => request.destroy(Object.assign(new Error(`no answer in ${timeoutMs} ms`), { name: 'TimeoutError' })))
    request.on('error', reject)
    request.end(body)
  })
}

// ---------------------------------------------------------------- retrying client

export interface IngestResult {
  accepted: number
  duplicates: number
  deferred: number
  rejected: { index: number; code: string; message: string }[]
}

/** What a scenario's clients saw, summed over all of them. */
export class LoadStats {
  requests = 0
  readonly statuses = new Map<number, number>()
  connectionErrors = 0
  timeouts = 0
  /** Latency of every 200, in ms. */
  readonly okLatencies: number[] = []
  /** Latency of every 429 and 503: a refusal should be quick. */
  readonly refusedLatencies: number[] = []
  /** Batches acknowledged with a 200. */
  acknowledged = 0
  accepted = 0
  duplicates = 0
  maxLagMs = 0
  /** Responses carrying a non-zero X-Client-Queue-Lag. */
  laggedResponses = 0
  /** Total extra delay the clients added because the server asked them to. */
  lagWaitMs = 0
  /** 429 or 503 without a Retry-After header. */
  missingRetryAfter = 0
  /** Responses without X-Client-Queue-Lag (contract: every response carries it). */
  missingLagHeader = 0
  /** Error answers by status and code, e.g. "503 OVERLOADED". */
  readonly errorCodes = new Map<string, number>()
  /** Non-200 answers whose body is not the coded error shape (first few kept). */
  readonly malformedErrors: string[] = []
  readonly #started = performance.now()
  #ended: number | undefined

  /** Stops the clock that summary() divides by. */
  end(): void {
    this.#ended ??= performance.now()
  }

  count(status: number): void {
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1)
  }

  status(code: number): number {
    return this.statuses.get(code) ?? 0
  }

  /** Responses with a 5xx status other than 503 (the only one the contract allows). */
  get unexpected5xx(): number {
    let total = 0
    for (const [status, count] of this.statuses) if (status >= 500 && status !== 503) total += count
    return total
  }

  summary(): Record<string, unknown> {
    const seconds = ((this.#ended ?? performance.now()) - this.#started) / 1000
    return {
      seconds: round(seconds),
      requests: this.requests,
      statuses: Object.fromEntries([...this.statuses].sort(([a], [b]) => a - b)),
      errorCodes: Object.fromEntries(this.errorCodes),
      connectionErrors: this.connectionErrors,
      timeouts: this.timeouts,
      acknowledgedBatches: this.acknowledged,
      okPerSecond: round(this.acknowledged / seconds),
      okP50Ms: round(percentile(this.okLatencies, 50)),
      okP95Ms: round(percentile(this.okLatencies, 95)),
      okP99Ms: round(percentile(this.okLatencies, 99)),
      refusedP95Ms: round(percentile(this.refusedLatencies, 95)),
      maxLagMs: this.maxLagMs,
      lagWaitMs: Math.round(this.lagWaitMs),
    }
  }
}

/** Is this the contract's error body { statusCode, code, error, message }? */
export function isCodedError(body: unknown, status: number): boolean {
  if (body === null || typeof body !== 'object') return false
  const { statusCode, code, error, message } = body as Record<string, unknown>
  return statusCode === status && typeof code === 'string' && /^[A-Z_]+$/.test(code) && typeof error === 'string' && typeof message === 'string'
}

export interface ClientOptions {
  baseUrl: string
  token: string
  /** Where attempts are counted; a function lets a scenario switch phases mid-flight. */
  stats: LoadStats | (() => LoadStats)
  /** Epoch ms after which the client gives up (keeps every scenario bounded). */
  deadline: number
  path?: string
  /** Per-attempt timeout. */
  timeoutMs?: number
  /** Wait X-Client-Queue-Lag ms after each 200 before the next send, as the SDK does. */
  honourLag?: boolean
}

type Attempt = { ok: true; result: IngestResult } | { ok: false; waitMs: number }

/**
 * Resends a batch, unchanged (same eventIds), until it gets a 200: after 429
 * and 503 it waits Retry-After; after a connection error, timeout or other
 * 5xx, a short jittered backoff. Any other 4xx is a bug in the scenario or the
 * API and throws.
 */
export class RetryingClient {
  readonly #options: ClientOptions

  constructor(options: ClientOptions) {
    this.#options = options
  }

  async send(body: unknown): Promise<IngestResult> {
    const payload = JSON.stringify(body)
    for (let attempt = 0; ; attempt++) {
      if (Date.now() > this.#options.deadline) throw new Error(`gave up after ${attempt} attempts: the scenario's deadline passed`)
      const outcome = await this.#attempt(payload, attempt)
      if (outcome.ok) return outcome.result
      await sleep(Math.min(outcome.waitMs, Math.max(0, this.#options.deadline - Date.now())))
    }
  }

  async #attempt(payload: string, attempt: number): Promise<Attempt> {
    const stats = typeof this.#options.stats === 'function' ? this.#options.stats() : this.#options.stats
    const backoff = Math.min(1000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2)
    const started = performance.now()
    stats.requests++
    let response: Response
    let text: string
    try {
      response = await fetch(this.#options.baseUrl + (this.#options.path ?? '/api/client/progress/batch'), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.#options.token}` },
        body: payload,
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 15000),
      })
      text = await response.text()
    } catch (error) {
      if ((error as Error).name === 'TimeoutError') stats.timeouts++
      else stats.connectionErrors++
      return { ok: false, waitMs: backoff }
    }
    const latency = performance.now() - started
    stats.count(response.status)
    const lagHeader = response.headers.get('x-client-queue-lag')
    if (lagHeader === null) stats.missingLagHeader++
    const lag = Number(lagHeader ?? 0)
    stats.maxLagMs = Math.max(stats.maxLagMs, lag)
    if (lag > 0) stats.laggedResponses++

    if (response.status === 200) {
      const result = JSON.parse(text) as IngestResult
      stats.okLatencies.push(latency)
      stats.acknowledged++
      stats.accepted += result.accepted
      stats.duplicates += result.duplicates
      if (this.#options.honourLag && lag > 0) {
        const wait = Math.min(lag, Math.max(0, this.#options.deadline - Date.now()))
        stats.lagWaitMs += wait
        await sleep(wait)
      }
      return { ok: true, result }
    }

    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      body = text
    }
    if (isCodedError(body, response.status)) {
      const key = `${response.status} ${(body as { code: string }).code}`
      stats.errorCodes.set(key, (stats.errorCodes.get(key) ?? 0) + 1)
    } else if (stats.malformedErrors.length < 5) {
      stats.malformedErrors.push(`${response.status} ${text.slice(0, 200)}`)
    }
    if (response.status === 429 || response.status === 503) {
      stats.refusedLatencies.push(latency)
      const retryAfter = response.headers.get('retry-after')
      if (retryAfter === null) stats.missingRetryAfter++
      const seconds = Number(retryAfter)
      return { ok: false, waitMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : backoff }
    }
    if (response.status >= 500) return { ok: false, waitMs: backoff }
    throw new Error(`unexpected ${response.status}: ${text.slice(0, 300)}`)
  }
}

export interface Learner {
  token: string
  batches: PlannedEvent[][]
}

/**
 * Every learner sends its batches in order, one at a time, each until it is
 * acknowledged; all learners at once. Checks that every 200 accounts for each
 * event of its batch exactly once, with nothing rejected or deferred.
 */
export async function runLearners(
  learners: Learner[],
  client: Omit<ClientOptions, 'token'>,
): Promise<{ misaccounted: string[] }> {
  const misaccounted: string[] = []
  await Promise.all(
    learners.map(async (learner) => {
      const sender = new RetryingClient({ ...client, token: learner.token })
      for (const batch of learner.batches) {
        const result = await sender.send({ events: batch })
        const total = result.accepted + result.duplicates + result.deferred + result.rejected.length
        if (total !== batch.length || result.deferred !== 0 || result.rejected.length !== 0) {
          misaccounted.push(`${batch.length} events answered ${JSON.stringify(result).slice(0, 300)}`)
        }
      }
    }),
  )
  return { misaccounted }
}

// ---------------------------------------------------------------- database checks

const STATUS_RANK = { lesson_started: 1, lesson_progress: 2, lesson_completed: 3 } as const
const STATUS_NAME = ['', 'started', 'in_progress', 'completed'] as const

interface LessonExpectation {
  status: number
  progressPct: number
  timeSpentMs: number
  eventCount: number
  completedAt: number | null
}

/** Lesson progress as the contract defines it, computed from the unique events. */
export function expectedLessons(events: Iterable<PlannedEvent>): Map<string, LessonExpectation> {
  const lessons = new Map<string, LessonExpectation>()
  for (const event of events) {
    const key = `${event.userId}|${event.courseId}|${event.lessonId}`
    const lesson = lessons.get(key) ?? { status: 0, progressPct: 0, timeSpentMs: 0, eventCount: 0, completedAt: null }
    const completed = event.type === 'lesson_completed'
    const at = Date.parse(event.occurredAt)
    lesson.status = Math.max(lesson.status, STATUS_RANK[event.type])
    lesson.progressPct = Math.max(lesson.progressPct, completed ? 100 : Math.floor(event.progress ?? 0))
    lesson.timeSpentMs += event.timeSpentMs
    lesson.eventCount++
    if (completed) lesson.completedAt = lesson.completedAt === null ? at : Math.min(lesson.completedAt, at)
    lessons.set(key, lesson)
  }
  return lessons
}

export interface ExactlyOnceReport {
  expected: number
  stored: number
  missing: number
  unexpected: number
  lessonMismatches: number
  courseMismatches: number
}

/**
 * The database holds exactly the unique events sent (by eventId), nothing
 * deferred, and lesson and course progress equal what the contract derives
 * from those events, whatever order and however often they arrived.
 */
export async function checkExactlyOnce(t: Test, sql: Sql, sent: Iterable<PlannedEvent>): Promise<ExactlyOnceReport> {
  const unique = new Map<string, PlannedEvent>()
  for (const event of sent) unique.set(event.eventId, event)

  const rows = await sql<{ id: string }[]>`select event_id::text as id from progress_events`
  const stored = new Set(rows.map((row) => row.id))
  const missing = [...unique.keys()].filter((id) => !stored.has(id))
  const unexpected = [...stored].filter((id) => !unique.has(id))
  t.equal(rows.length, stored.size, 'no event is stored twice')
  t.equal(missing.length, 0, `every event sent is stored (first missing: ${missing[0] ?? 'none'})`)
  t.equal(unexpected.length, 0, 'nothing is stored that was not sent')
  t.equal(rows.length, unique.size, 'the database holds exactly the unique events sent')
  const [deferred] = await sql<{ count: number }[]>`select count(*)::int as count from dead_letter_events`
  t.equal(deferred!.count, 0, 'nothing was deferred (every learner is assigned)')

  const expected = expectedLessons(unique.values())
  const lessonRows = await sql<
    { user_id: string; course_id: string; lesson_id: string; status: string; progress_pct: number; time_spent_ms: number; event_count: number; completed_at: Date | null }[]
  >`select user_id, course_id, lesson_id, status::text, progress_pct, time_spent_ms, event_count, completed_at from user_lesson_progress`
  const lessonProblems: string[] = []
  for (const row of lessonRows) {
    const key = `${row.user_id}|${row.course_id}|${row.lesson_id}`
    const want = expected.get(key)
    const got = {
      status: row.status,
      progressPct: row.progress_pct,
      timeSpentMs: Number(row.time_spent_ms),
      eventCount: row.event_count,
      completedAt: row.completed_at?.getTime() ?? null,
    }
    const wanted = want && { ...want, status: STATUS_NAME[want.status] }
    if (JSON.stringify(got) !== JSON.stringify(wanted)) lessonProblems.push(`${key}: got ${JSON.stringify(got)}, want ${JSON.stringify(wanted)}`)
  }
  t.equal(lessonRows.length, expected.size, 'one lesson-progress row per lesson touched')
  t.equal(lessonProblems.length, 0, `lesson progress matches the events (${lessonProblems[0] ?? 'all match'})`)

  const courses = new Map<string, { started: number; completed: number; timeSpentMs: number }>()
  for (const [key, lesson] of expected) {
    const courseKey = key.slice(0, key.lastIndexOf('|'))
    const course = courses.get(courseKey) ?? { started: 0, completed: 0, timeSpentMs: 0 }
    course.started++
    if (lesson.status === STATUS_RANK.lesson_completed) course.completed++
    course.timeSpentMs += lesson.timeSpentMs
    courses.set(courseKey, course)
  }
  const courseRows = await sql<{ user_id: string; course_id: string; lessons_started: number; lessons_completed: number; time_spent_ms: number }[]>`
    select user_id, course_id, lessons_started, lessons_completed, time_spent_ms from user_course_progress`
  const courseProblems = courseRows.filter((row) => {
    const want = courses.get(`${row.user_id}|${row.course_id}`)
    return !want || want.started !== row.lessons_started || want.completed !== row.lessons_completed || want.timeSpentMs !== Number(row.time_spent_ms)
  })
  t.equal(courseRows.length, courses.size, 'one course-progress row per (learner, course) touched')
  t.equal(courseProblems.length, 0, 'course progress matches the lessons')

  return {
    expected: unique.size,
    stored: rows.length,
    missing: missing.length,
    unexpected: unexpected.length,
    lessonMismatches: lessonProblems.length,
    courseMismatches: courseProblems.length,
  }
}
