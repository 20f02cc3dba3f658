// GET /api/v1/analytics/learner/:userId: answers from the cache or the stored
// row at once, and enqueues at most one recompute per user-role when the row
// is missing ("calculating") or stale ("refreshing"). The compare-and-set on
// the row (claimRecompute) is what keeps concurrent reads, on any number of
// API instances, from enqueuing more than one.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from '../db/pool.ts'
import type { LruTtlCache } from './cache.ts'
import { claimRecompute, readStored, releaseRecompute, type StoredAnalytics } from './store.ts'
import { ANALYTICS_QUEUES, cacheKey, isAnalyticsRole, type UserRoleKey } from './types.ts'

export type AnalyticsStatus = 'fresh' | 'refreshing' | 'calculating'

export interface AnalyticsAnswer {
  status: AnalyticsStatus
  data: Record<string, unknown> | null
  updatedAt: string | null
  ageHours: number | null
}

export interface JobSender {
  send(name: string, data: object): Promise<string>
}

export interface ReadPathOptions {
  sql: Sql
  jobs: JobSender
  cache: LruTtlCache<StoredAnalytics>
  staleAfterMs: number
  /** After this long a claimed recompute that never landed may be claimed again. */
  leaseMs: number
  log: FastifyBaseLogger
}

const HOUR_MS = 3600000

export class AnalyticsReadPath {
  readonly #options: ReadPathOptions
  // Bumped by every invalidation: a database read that an invalidation
  // overtook must not put its (possibly older) row in the cache.
  #epoch = 0

  constructor(options: ReadPathOptions) {
    this.#options = options
  }

  get cache(): LruTtlCache<StoredAnalytics> {
    return this.#options.cache
  }

  async read(key: UserRoleKey, now = Date.now()): Promise<AnalyticsAnswer> {
    const { cache, staleAfterMs } = this.#options
    const id = cacheKey(key)
    let stored = cache.get(id)
    if (!stored) {
      const epoch = this.#epoch
      stored = await readStored(this.#options.sql, key)
      if (stored?.data && stored.computedAt && epoch === this.#epoch) cache.set(id, stored)
    }
    if (!stored?.data || !stored.computedAt) {
      await this.enqueueOnce(key)
      return { status: 'calculating', data: null, updatedAt: null, ageHours: null }
    }
    const ageMs = Math.max(0, now - stored.computedAt.getTime())
    const stale = ageMs > staleAfterMs || !stored.current
    if (stale) await this.enqueueOnce(key)
    return {
      status: stale ? 'refreshing' : 'fresh',
      data: stored.data,
      updatedAt: stored.computedAt.toISOString(),
      ageHours: Math.round((ageMs / HOUR_MS) * 100) / 100,
    }
  }

  /** Enqueues a recompute unless one is already claimed; resolves to whether this call enqueued. */
  async enqueueOnce(key: UserRoleKey): Promise<boolean> {
    const { sql, jobs, leaseMs, log } = this.#options
    if (!(await claimRecompute(sql, key, leaseMs))) return false
    try {
      await jobs.send(ANALYTICS_QUEUES.recompute, key)
      return true
    } catch (error) {
      // The answer still goes out with what is stored; the next read retries.
      log.warn({ err: error, ...key }, 'could not enqueue an analytics recompute')
      await releaseRecompute(sql, key).catch(() => {})
      return false
    }
  }

  /** A recompute landed somewhere (payload of the learner_analytics channel). */
  onNotification(payload: string): void {
    this.#epoch++
    try {
      const key = JSON.parse(payload) as Partial<UserRoleKey>
      if (typeof key.orgId === 'string' && typeof key.userId === 'string' && isAnalyticsRole(key.role)) {
        this.#options.cache.delete(cacheKey(key as UserRoleKey))
        return
      }
    } catch {
      // fall through: an unreadable notification drops everything
    }
    this.#options.cache.clear()
  }

  /** (Re)connected to the channel: notifications may have been missed. */
  invalidateAll(): void {
    this.#epoch++
    this.#options.cache.clear()
  }
}
