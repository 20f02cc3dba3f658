// Per-user rate limit on the ingestion routes: RATE_LIMIT_BATCHES_PER_SECOND
// batches per token `sub` in a fixed 1 s window, one budget across the four
// routes. Runs at preParsing: after auth (onRequest) has identified the user,
// before the body is read, so a throttled client costs us no parsing.
//
// With REDIS_URL the counters live in Redis and every API process shares one
// budget. When Redis is unreachable the limit falls back to this process's own
// counters (ingestion keeps working; the effective limit is per process until
// Redis returns), a warning is logged and rate_limit_redis_fallback reads 1.
import { createRequire } from 'node:module'
import rateLimit from '@fastify/rate-limit'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { Counter, Gauge } from 'prom-client'
import { counted } from '../../counted.ts'
import { Errors } from '../../errors.ts'

export interface RateLimitPluginOptions {
  batchesPerSecond: number
  redisUrl?: string
  /** Key prefix in Redis; tests use a unique one each. */
  redisKeyPrefix?: string
  /** A Redis command slower than this counts as Redis being down. */
  redisCommandTimeoutMs?: number
}

export const DEFAULT_REDIS_KEY_PREFIX = 'learning-events:rate-limit:'
const WINDOW_MS = 1000
/** After a failed command on a live connection, count locally this long before trying Redis again. */
const RETRY_REDIS_AFTER_MS = 1000

type StoreCallback = (error: Error | null, result?: { current: number; ttl: number }) => void
interface CounterStore {
  incr(key: string, callback: StoreCallback, timeWindow: number, max: number): void
}

// The stores that ship with @fastify/rate-limit (fixed window, Lua script in
// Redis), reused so that local and shared counting behave identically.
const require = createRequire(import.meta.url)
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as new (
  continueExceeding: boolean, exponentialBackoff: boolean, cache?: number,
) => CounterStore
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as new (
  continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key: string,
) => CounterStore

/** Counts in Redis while it answers, in process memory while it does not. */
export class FallbackCounter implements CounterStore {
  readonly #local = new LocalStore(false, false, 100000)
  readonly #redis: { client: Redis; store: CounterStore } | undefined
  readonly #onModeChange: (shared: boolean, reason: string) => void
  /** undefined until Redis first connects or fails, so that either is reported. */
  shared: boolean | undefined
  #retryAt = 0
  #closing = false

  constructor(client: Redis | undefined, keyPrefix: string, onModeChange: (shared: boolean, reason: string) => void) {
    this.#redis = client ? { client, store: new RedisStore(false, false, client, keyPrefix) } : undefined
    this.#onModeChange = onModeChange
    client?.on('ready', () => {
      this.#retryAt = 0
      this.#setShared(true, 'connected')
    })
    client?.on('error', (error: Error) => this.#setShared(false, error.message))
    client?.on('close', () => this.#setShared(false, 'connection closed'))
  }

  incr(key: string, callback: StoreCallback, timeWindow: number, max: number): void {
    const redis = this.#redis
    // A connection that is up but whose commands failed (timeouts: a hung
    // Redis) gets another try once RETRY_REDIS_AFTER_MS has passed.
    if (!redis || redis.client.status !== 'ready' || (!this.shared && performance.now() < this.#retryAt)) {
      this.#incrLocal(key, callback, timeWindow, max)
      return
    }
    redis.store.incr(key, (error, result) => {
      if (!error) {
        this.#setShared(true, 'answering')
        return callback(null, result)
      }
      this.#retryAt = performance.now() + RETRY_REDIS_AFTER_MS
      this.#setShared(false, error.message)
      this.#incrLocal(key, callback, timeWindow, max)
    }, timeWindow, max)
  }

  // LocalStore answers with the very object it keeps and increments in
  // place, and the plugin reads it only after an await: requests of one user
  // that interleave between the two would all read the last count (six
  // injected at once with a budget of five: six 429s). A copy each.
  #incrLocal(key: string, callback: StoreCallback, timeWindow: number, max: number): void {
    this.#local.incr(key, (error, result) => callback(error, result && { ...result }), timeWindow, max)
  }

  /** Disconnects without reporting our own disconnection as an outage. */
  close(): void {
    this.#closing = true
    this.#redis?.client.disconnect()
  }

  /** For a first connection that neither succeeded nor failed in time. */
  unreachable(reason: string): void {
    this.#setShared(false, reason)
  }

  #setShared(shared: boolean, reason: string): void {
    if (this.shared === shared || this.#closing) return
    this.shared = shared
    this.#onModeChange(shared, reason)
  }
}

function connectRedis(url: string, commandTimeoutMs: number): Redis {
  return new Redis(url, {
    // Fail commands at once while disconnected instead of queueing them: the
    // request then counts locally rather than waiting for Redis.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 1000,
    // Keep trying to come back, at most once a second.
    retryStrategy: (times) => Math.min(times * 100, 1000),
  })
}

/** Resolves when the client is ready or has failed once, whichever comes first. */
function firstConnection(client: Redis, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      client.off('ready', done)
      client.off('error', done)
      resolve()
    }
    const timer = setTimeout(done, timeoutMs)
    client.once('ready', done)
    client.once('error', done)
  })
}

function modeLogger(log: FastifyBaseLogger, fallback: Gauge, fallbacks: Counter) {
  let everShared = false
  return (shared: boolean, reason: string) => {
    fallback.set(shared ? 0 : 1)
    if (shared) {
      if (everShared) log.info('rate limit: Redis reachable again; limits are shared across processes')
      everShared = true
      return
    }
    fallbacks.inc()
    log.warn({ reason }, 'rate limit: Redis unreachable; falling back to this process\'s local limit')
  }
}

export default fp<RateLimitPluginOptions>(
  async (app, options) => {
    const registers = [app.metrics.registry]
    const limited = new Counter({ name: 'rate_limited_total', help: 'Ingestion requests refused with 429', registers })
    const fallback = new Gauge({
      name: 'rate_limit_redis_fallback',
      help: '1 while REDIS_URL is set but limits are counted in this process only',
      registers,
    })
    const fallbacks = new Counter({
      name: 'rate_limit_redis_fallbacks_total',
      help: 'Times the rate limit fell back from Redis to the local store',
      registers,
    })

    const client = options.redisUrl ? connectRedis(options.redisUrl, options.redisCommandTimeoutMs ?? 250) : undefined
    const counter = new FallbackCounter(client, options.redisKeyPrefix ?? DEFAULT_REDIS_KEY_PREFIX, modeLogger(app.log, fallback, fallbacks))
    if (client) {
      await firstConnection(client, 1500)
      if (client.status !== 'ready') counter.unreachable('not connected at start')
      app.addHook('onClose', async () => counter.close())
    }

    await app.register(rateLimit, {
      global: false,
      max: options.batchesPerSecond,
      timeWindow: WINDOW_MS,
      store: class {
        incr = counter.incr.bind(counter)
        child() {
          return this
        }
      },
      // User ids are an org's own: two orgs' learner-42 are two users.
      keyGenerator: (request) =>
        request.principal ? `user:${request.principal.orgId ?? ''}\u001f${request.principal.userId}` : `ip:${request.ip}`,
      onExceeded: () => limited.inc(),
      errorResponseBuilder: (_request, context) => new Errors.RATE_LIMITED(counted(Math.max(1, Math.ceil(context.ttl / 1000)), 'second')),
    })

    const limit = app.rateLimit()
    const preParsing = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      await limit.call(app, request, reply)
      return payload
    }
    app.addHook('onRoute', (route) => {
      if (!route.config?.ingest) return
      const existing = route.preParsing ? [route.preParsing].flat() : []
      route.preParsing = [...existing, preParsing] as typeof route.preParsing
    })
  },
  { name: 'rate-limit', dependencies: ['metrics', 'auth'] },
)
