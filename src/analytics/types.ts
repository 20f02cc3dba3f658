// Names shared by the API (which enqueues and reads) and the workers (which compute).

/** The roles a user's analytics are computed for (docs/analytics.md). */
export const ANALYTICS_ROLES = ['learner', 'instructor', 'admin'] as const
export type AnalyticsRole = (typeof ANALYTICS_ROLES)[number]

export function isAnalyticsRole(value: unknown): value is AnalyticsRole {
  return typeof value === 'string' && (ANALYTICS_ROLES as readonly string[]).includes(value)
}

/** pg-boss queue names of the analytics jobs (src/analytics/jobs.ts). */
export const ANALYTICS_QUEUES = {
  dailyBatch: 'analytics-daily-batch',
  recompute: 'analytics-recompute',
  cohorts: 'analytics-cohorts',
} as const

/** One user's analytics in one role of one org: the stored row's key. */
export interface UserRoleKey {
  orgId: string
  userId: string
  role: AnalyticsRole
}

/** The notification channel a stored recompute is announced on (sql/000025). */
export const ANALYTICS_CHANNEL = 'learner_analytics'

export function cacheKey(key: UserRoleKey): string {
  return `${key.orgId}\u001f${key.userId}\u001f${key.role}`
}
