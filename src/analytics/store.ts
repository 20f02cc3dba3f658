// The read path's queries: stored analytics, the recompute guard, refresh
// slots and job ownership, cohorts, pattern evolution. Each is one statement;
// the logic lives in the SQL functions of sql/000020-000027.
import type { Sql } from '../db/pool.ts'
import type { AnalyticsRole, UserRoleKey } from './types.ts'

export interface StoredAnalytics {
  /** null while the first computation has not landed. */
  data: Record<string, unknown> | null
  computedAt: Date | null
  /** Computed by the current metric catalogue (analytics_version()). */
  current: boolean
}

export async function readStored(sql: Sql, key: UserRoleKey): Promise<StoredAnalytics | undefined> {
  const [row] = await sql<{ data: Record<string, unknown> | null; computed_at: Date | null; current: boolean }[]>`
    select data, computed_at, coalesce(version = analytics_version(), false) as current
    from learner_analytics
    where org_id = ${key.orgId} and user_id = ${key.userId} and role = ${key.role}`
  return row ? { data: row.data, computedAt: row.computed_at, current: row.current } : undefined
}

/** The compare-and-set of sql/000025: true for the one caller that must enqueue. */
export async function claimRecompute(sql: Sql, key: UserRoleKey, leaseMs: number): Promise<boolean> {
  const [row] = await sql<{ claimed: boolean }[]>`
    select request_learner_recompute(${key.orgId}, ${key.userId}, ${key.role}, ${leaseMs}::float8 * interval '1 millisecond') as claimed`
  return row?.claimed ?? false
}

export async function releaseRecompute(sql: Sql, key: UserRoleKey): Promise<void> {
  await sql`select release_learner_recompute(${key.orgId}, ${key.userId}, ${key.role})`
}

export type RefreshClaim = { refreshId: number } | { retryAfterMs: number }

export async function claimRefresh(
  sql: Sql,
  requestedBy: string,
  key: UserRoleKey,
  limit: { max: number; windowMs: number },
): Promise<RefreshClaim> {
  const [row] = await sql<{ refresh_id: number | null; retry_after_ms: number | null }[]>`
    select refresh_id, retry_after_ms
    from claim_analytics_refresh(${requestedBy}, ${key.orgId}, ${key.userId}, ${key.role},
                                 ${limit.max}, ${limit.windowMs}::float8 * interval '1 millisecond')`
  return row?.refresh_id != null ? { refreshId: Number(row.refresh_id) } : { retryAfterMs: Number(row?.retry_after_ms ?? 1000) }
}

export async function recordRefreshJob(sql: Sql, refreshId: number, queue: string, jobId: string): Promise<void> {
  await sql`update job_requests set queue = ${queue}, job_id = ${jobId} where id = ${refreshId}`
}

/** A refresh whose job could not be enqueued does not count against the limit. */
export async function dropRefresh(sql: Sql, refreshId: number): Promise<void> {
  await sql`delete from job_requests where id = ${refreshId}`
}

export interface JobRequest {
  kind: string
  requestedBy: string
  orgId: string
  userId: string
  role: AnalyticsRole | null
  queue: string
}

export async function findJobRequest(sql: Sql, jobId: string): Promise<JobRequest | undefined> {
  const [row] = await sql<{ kind: string; requested_by: string; org_id: string; user_id: string; role: AnalyticsRole | null; queue: string }[]>`
    select kind, requested_by, org_id, user_id, role, queue
    from job_requests where job_id = ${jobId} and queue is not null`
  return row
    ? { kind: row.kind, requestedBy: row.requested_by, orgId: row.org_id, userId: row.user_id, role: row.role, queue: row.queue }
    : undefined
}

/**
 * The org of the user's oldest assignment in `role` (within `onlyOrg` when
 * given), or undefined when they have none. Oldest, as ingestion picks among a
 * course's assignments for a token without an org (sql/000039): a learner whose
 * courses are all in one org reads the analytics of the org their events went to.
 */
export async function assignmentOrg(sql: Sql, userId: string, role: AnalyticsRole, onlyOrg?: string): Promise<string | undefined> {
  const [row] = await sql<{ org_id: string }[]>`
    select org_id from assignments
    where user_id = ${userId} and role = ${role} and (${onlyOrg ?? null}::text is null or org_id = ${onlyOrg ?? null})
    order by assigned_at, org_id
    limit 1`
  return row?.org_id
}

export interface WeekPoint {
  weekStart: string
  activeDays: number
  events: number
  timeSpentMs: number
  lessonsCompleted: number
}

export async function patternEvolution(sql: Sql, orgId: string, userId: string, weeks: number, now: Date): Promise<WeekPoint[]> {
  const rows = await sql<{ week_start: string; active_days: number; events: number; time_spent_ms: number; lessons_completed: number }[]>`
    select to_char(week_start, 'YYYY-MM-DD') as week_start, active_days, events, time_spent_ms, lessons_completed
    from pattern_evolution(${orgId}, ${userId}, ${weeks}, ${now})`
  return rows.map((row) => ({
    weekStart: row.week_start,
    activeDays: row.active_days,
    events: row.events,
    timeSpentMs: row.time_spent_ms,
    lessonsCompleted: row.lessons_completed,
  }))
}

export interface StoredCohorts {
  computedAt: Date | null
  current: boolean
  k: number | null
  method: string | null
  silhouette: number | null
  learners: number | null
  archetypes: unknown[] | null
}

export async function readCohorts(sql: Sql, orgId: string): Promise<StoredCohorts | undefined> {
  const [row] = await sql<{ computed_at: Date | null; current: boolean; k: number | null; method: string | null; silhouette: number | null; learners: number | null; archetypes: unknown[] | null }[]>`
    select computed_at, coalesce(version = analytics_version(), false) as current, k, method, silhouette, learners, archetypes
    from cohort_runs where org_id = ${orgId}`
  return row
    ? { computedAt: row.computed_at, current: row.current, k: row.k, method: row.method, silhouette: row.silhouette, learners: row.learners, archetypes: row.archetypes }
    : undefined
}

export async function claimCohorts(sql: Sql, orgId: string, leaseMs: number): Promise<boolean> {
  const [row] = await sql<{ claimed: boolean }[]>`
    select request_cohorts(${orgId}, ${leaseMs}::float8 * interval '1 millisecond') as claimed`
  return row?.claimed ?? false
}

export async function releaseCohorts(sql: Sql, orgId: string): Promise<void> {
  await sql`update cohort_runs set requested_at = null where org_id = ${orgId}`
}
