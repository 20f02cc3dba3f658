// Shared by the edge-*.test.ts files: an app built with edge options and a
// captured log, a Redis connection that can be cut and restored, and a way to
// make the ingestion procedures wait on a lock.
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { buildApp, type AppConfig, type EdgeOptions } from '../../src/api/app.ts'
import { mintToken, type MintOptions } from '../../src/auth/tokens.ts'
import type { Sql } from '../../src/db/pool.ts'
import { progressEvent, TEST_SECRET, testConfig, testDatabase, testPool } from '../helper.ts'

export const BATCH = '/api/client/progress/batch'
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export interface LogCapture {
  lines: Record<string, unknown>[]
  raw: string[]
  write(line: string): void
}

export function captureLog(): LogCapture {
  const capture: LogCapture = {
    lines: [],
    raw: [],
    write(line: string) {
      capture.raw.push(line)
      capture.lines.push(JSON.parse(line) as Record<string, unknown>)
    },
  }
  return capture
}

export interface EdgeHarness {
  app: FastifyInstance
  sql: Sql
  url: string
  log: LogCapture
  token(userId: string, options?: Omit<MintOptions, 'userId'>): Promise<string>
  post(token: string, payload?: unknown, headers?: Record<string, string>, url?: string): Promise<LightMyRequestResponse>
}

export interface EdgeBuildOptions {
  config?: Partial<AppConfig>
  edge?: EdgeOptions
  /** Reuse a database (two instances of the API on one database). */
  databaseUrl?: string
  logLevel?: AppConfig['LOG_LEVEL']
}

/** An app on a fresh database (or the given one) with a captured log; closed after the test. */
export async function buildEdge(t: Test, options: EdgeBuildOptions = {}): Promise<EdgeHarness> {
  const url = options.databaseUrl ?? (await testDatabase(t))
  const log = captureLog()
  const app = await buildApp({
    config: { ...testConfig, LOG_LEVEL: options.logLevel ?? 'info', ...options.config },
    databaseUrl: url,
    logStream: log,
    // Process metrics add GC observers per app; the edge tests only need them once.
    // These tests block the database on purpose, for longer than the write
    // deadline on a slow machine (the memory test's flood took over 5 s in CI):
    // the deadline has its own test (edge-outage.test.ts).
    edge: { processMetrics: false, writeDeadlineMs: 600_000, ...options.edge },
  })
  await app.ready()
  t.teardown(() => app.close())
  const sql = testPool(t, url)
  return {
    app,
    sql,
    url,
    log,
    token: (userId, options = {}) => mintToken(TEST_SECRET, { userId, ...options }),
    post: (token, payload = { events: [progressEvent()] }, headers = {}, route = BATCH) =>
      app.inject({ method: 'POST', url: route, headers: { authorization: `Bearer ${token}`, ...headers }, payload: payload as object }),
  }
}

/** A unique Redis key prefix, so parallel test files never share counters. */
export const redisPrefix = () => `learning-events-test:${randomUUID()}:`

/**
 * Holds an ACCESS EXCLUSIVE lock on `assignments` (which both ingestion
 * procedures read) in its own connection until release() is called: every
 * ingestion call waits, while /api/health, which does not read it, answers.
 */
export async function lockAssignments(sql: Sql): Promise<{ release(): Promise<void> }> {
  const reserved = await sql.reserve()
  await reserved`begin`
  await reserved`lock table assignments in access exclusive mode`
  let released: Promise<void> | undefined
  return {
    release: () =>
      (released ??= (async () => {
        await reserved`commit`
        reserved.release()
      })()),
  }
}

/** Metric value from Prometheus text, e.g. metric(text, 'shed_requests_total{reason="in_flight"}'). */
export function metric(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
  }
  return undefined
}

export async function scrape(app: FastifyInstance): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  return res.body
}

/** Polls until check() is truthy or the time is up; returns the last value. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 5000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let value = await check()
  while (!value && Date.now() < deadline) {
    await sleep(everyMs)
    value = await check()
  }
  return value
}

/**
 * A TCP relay to a real server that can be cut (listener closed, connections
 * destroyed) and restored on the same port, frozen (connections destroyed,
 * new ones accepted but never answered, like a hung host), or stalled (open
 * connections stop carrying data until resumed): controllable
 * outages of the machine's Redis or the test database without touching the
 * servers others use.
 */
export async function tcpRelay(t: Test, targetPort: number, targetHost = '127.0.0.1') {
  const sockets = new Set<net.Socket>()
  let server: net.Server | undefined
  let frozen = false
  let stalled = false
  const held: (() => void)[] = []
  const forward = (from: net.Socket, to: net.Socket) =>
    from.on('data', (chunk) => (stalled ? held.push(() => to.write(chunk)) : to.write(chunk)))
  const track = (socket: net.Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
  }
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server = net.createServer((client) => {
        track(client)
        if (frozen) return
        const upstream = net.connect(targetPort, targetHost)
        track(upstream)
        forward(client, upstream)
        forward(upstream, client)
      })
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve((server!.address() as net.AddressInfo).port))
    })
  const dropAll = () => {
    for (const socket of sockets) socket.destroy()
  }
  const port = await listen(0)
  const cut = () =>
    new Promise<void>((resolve) => {
      dropAll()
      server ? server.close(() => resolve()) : resolve()
      server = undefined
    })
  t.teardown(cut)
  return {
    port,
    cut,
    restore: () => listen(port),
    freeze: () => {
      frozen = true
      dropAll()
    },
    thaw: () => {
      frozen = false
      dropAll()
    },
    stall: () => {
      stalled = true
    },
    resume: () => {
      stalled = false
      for (const send of held.splice(0)) send()
    },
  }
}
