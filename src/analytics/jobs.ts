// Learner analytics jobs: the daily batch (every user-role at DAILY_BATCH_CRON),
// the on-demand recompute of one user-role (enqueued by the read path and the
// manual refresh), and cohort discovery (daily, or one org on demand).
import { job, PERSONAL_JOB_KEEP_SECONDS, type JobDefinition } from '../jobs/definition.ts'
import { discoverAllCohorts, discoverCohorts } from './cohorts.ts'
import { DEFAULT_CHUNK_SIZE, recomputeUserRole, runDailyBatch } from './compute.ts'
import { ANALYTICS_QUEUES, isAnalyticsRole, type UserRoleKey } from './types.ts'

const isId = (value: unknown): value is string => typeof value === 'string' && value.length > 0 && value.length <= 128

/** Queue data comes from the database: checked, never trusted. */
function userRoleKey(data: Partial<UserRoleKey>): UserRoleKey {
  if (!isId(data.orgId) || !isId(data.userId) || !isAnalyticsRole(data.role)) {
    throw new Error(`analytics job data must be { orgId, userId, role }, got ${JSON.stringify(data).slice(0, 200)}`)
  }
  return { orgId: data.orgId, userId: data.userId, role: data.role }
}

export const dailyBatchJob = job<object>({
  name: ANALYTICS_QUEUES.dailyBatch,
  cron: (config) => config.DAILY_BATCH_CRON,
  // One run at a time across workers: a second overlapping run would only redo the work.
  policy: 'stately',
  retryLimit: 1,
  expireInSeconds: 4 * 3600,
  async handler(_data, context) {
    // Chunks run in parallel, each on one connection; leave the rest of the pool to other jobs.
    const parallel = Math.max(1, Math.min(4, context.config.DB_POOL_MAX - 2))
    return runDailyBatch(context.sql, {
      chunkSize: DEFAULT_CHUNK_SIZE,
      parallel,
      signal: context.signal,
      ...(context.progress ? { onChunk: context.progress } : {}),
      onChunkError: (chunk, error) =>
        context.log.error({ err: error, orgId: chunk.orgId, role: chunk.role, users: chunk.userIds.length }, 'analytics chunk failed'),
    })
  },
})

export const recomputeJob = job<Partial<UserRoleKey>>({
  name: ANALYTICS_QUEUES.recompute,
  concurrency: 4,
  retryLimit: 2,
  expireInSeconds: 600,
  deleteAfterSeconds: PERSONAL_JOB_KEEP_SECONDS,
  async handler(data, context) {
    const key = userRoleKey(data)
    const stored = await recomputeUserRole(context.sql, key)
    return { ...key, stored }
  },
})

export const cohortsJob = job<{ orgId?: unknown }>({
  name: ANALYTICS_QUEUES.cohorts,
  cron: (config) => config.DAILY_BATCH_CRON,
  retryLimit: 1,
  expireInSeconds: 3600,
  async handler(data, context) {
    if (data.orgId === undefined) return discoverAllCohorts(context.sql, new Date(), context.signal)
    if (!isId(data.orgId)) throw new Error('cohort job data must be { orgId? }')
    const { orgId, learners, k, silhouette } = await discoverCohorts(context.sql, data.orgId)
    return { orgId, learners, k, silhouette }
  },
})

export const analyticsJobs: JobDefinition[] = [dailyBatchJob, recomputeJob, cohortsJob]
