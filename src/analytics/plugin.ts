// `app.analytics`: the read path with its cache. The cache is invalidated by
// the learner_analytics notifications every stored recompute sends (sql/000025),
// so every API instance drops a user-role the moment a worker stores it; on a
// (re)connection of the listening connection it is cleared, as notifications
// may have been missed. Its hit and miss counts go to /metrics.
import fp from 'fastify-plugin'
import { Counter, Gauge, type Registry } from 'prom-client'
import { Value } from 'typebox/value'
import { ConfigSchema, refreshLimit, type Config } from '../config.ts'
import { LruTtlCache } from './cache.ts'
import { AnalyticsReadPath } from './read-path.ts'
import type { StoredAnalytics } from './store.ts'
import { ANALYTICS_CHANNEL } from './types.ts'

declare module 'fastify' {
  interface FastifyInstance {
    analytics: AnalyticsReadPath
  }
}

export interface AnalyticsSettings {
  staleAfterMs: number
  refreshLimit: { max: number; windowMs: number }
}

/** The analytics settings of a (possibly partial) config, schema defaults for what it lacks. */
export function analyticsSettings(config: Partial<Pick<Config, 'STALE_AFTER_MS' | 'REFRESH_LIMIT'>>): AnalyticsSettings {
  const staleAfterMs = config.STALE_AFTER_MS ?? (Value.Default(ConfigSchema.properties.STALE_AFTER_MS, undefined) as number)
  const limit = config.REFRESH_LIMIT ?? (Value.Default(ConfigSchema.properties.REFRESH_LIMIT, undefined) as string)
  return { staleAfterMs, refreshLimit: refreshLimit({ REFRESH_LIMIT: limit }) }
}

export interface AnalyticsPluginOptions {
  staleAfterMs: number
  /** Entries kept; the least recently used go first. */
  cacheEntries?: number
  /** A bound on how long an entry may outlive a lost notification. */
  cacheTtlMs?: number
  /** How long a claimed recompute blocks others (the recompute job's expiry). */
  leaseMs?: number
}

export const DEFAULT_CACHE_ENTRIES = 10000
export const DEFAULT_CACHE_TTL_MS = 60000
export const DEFAULT_LEASE_MS = 600000

export default fp<AnalyticsPluginOptions>(
  async (app, options) => {
    const cache = new LruTtlCache<StoredAnalytics>({
      maxEntries: options.cacheEntries ?? DEFAULT_CACHE_ENTRIES,
      ttlMs: options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS,
    })
    const readPath = new AnalyticsReadPath({
      sql: app.sql,
      jobs: app.jobs,
      cache,
      staleAfterMs: options.staleAfterMs,
      leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
      log: app.log,
    })
    const listener = await app.sql.listen(
      ANALYTICS_CHANNEL,
      (payload) => readPath.onNotification(payload),
      () => readPath.invalidateAll(),
    )
    app.addHook('onClose', async () => {
      await listener.unlisten().catch(() => {})
    })
    if (app.hasDecorator('metrics')) registerCacheMetrics(app.metrics.registry, cache)
    app.decorate('analytics', readPath)
  },
  { name: 'analytics', dependencies: ['database', 'jobs'] },
)

/** Read at scrape time from the cache's own counters. */
function registerCacheMetrics(registry: Registry, cache: LruTtlCache<StoredAnalytics>): void {
  new Counter({
    name: 'analytics_cache_lookups_total',
    help: 'Learner-analytics cache lookups by result (hit or miss)',
    labelNames: ['result'] as const,
    registers: [registry],
    collect() {
      this.reset()
      this.inc({ result: 'hit' }, cache.stats.hits)
      this.inc({ result: 'miss' }, cache.stats.misses)
    },
  })
  new Gauge({
    name: 'analytics_cache_hit_ratio',
    help: 'Learner-analytics cache hits over lookups since start',
    registers: [registry],
    collect() {
      this.set(cache.hitRate())
    },
  })
  new Gauge({
    name: 'analytics_cache_entries',
    help: 'Learner-analytics cache entries held',
    registers: [registry],
    collect() {
      this.set(cache.size)
    },
  })
}
