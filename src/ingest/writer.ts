// The write path's only database access: one stored-procedure call per batch.
// Kept behind an interface so that a coalescing writer (group commit) can take
// its place without the routes knowing.
import type { Sql } from '../db/pool.ts'
import type { AnalyticsRow, ProgressRow, Stream } from './validate.ts'

/** One letter per row, in row order: a = accepted, d = duplicate, q = deferred. */
export type Outcomes = string

/**
 * `signal`, when it aborts, gives up a write that has not reached the
 * database yet (a group-commit request still queued); it is then never made.
 */
export interface BatchWriter {
  write(stream: 'progress', rows: ProgressRow[], signal?: AbortSignal): Promise<Outcomes>
  write(stream: 'analytics', rows: AnalyticsRow[], signal?: AbortSignal): Promise<Outcomes>
  write(stream: Stream, rows: ProgressRow[] | AnalyticsRow[], signal?: AbortSignal): Promise<Outcomes>
}

export function directWriter(sql: Sql): BatchWriter {
  return {
    async write(stream: Stream, rows: ProgressRow[] | AnalyticsRow[]): Promise<Outcomes> {
      const payload = JSON.stringify(rows)
      const [result] =
        stream === 'progress'
          ? await sql<{ outcomes: string }[]>`select upsert_progress_batch(${payload}::text::json) as outcomes`
          : await sql<{ outcomes: string }[]>`select upsert_analytics_batch(${payload}::text::json) as outcomes`
      return result!.outcomes
    },
  }
}
