// Runs one job definition and records the run in worker_runs (GET /api/health
// reports the latest finish), whether a worker took it from its queue or a
// one-shot script ran it. Failed runs are recorded too, then rethrown so the
// queue retries them.
import type { Sql } from '../db/pool.ts'
import type { JobContext, JobDefinition } from './definition.ts'

export async function runJob(definition: JobDefinition, data: object, context: JobContext): Promise<object> {
  const startedAt = new Date()
  const tag = context.jobId ? { jobId: context.jobId } : {}
  try {
    const result = (await definition.handler(data, context)) ?? {}
    await recordRun(context.sql, definition.name, startedAt, { ...tag, ...result })
    return result
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    await recordRun(context.sql, definition.name, startedAt, { ...tag, error: message.slice(0, 500) }).catch(() => {})
    throw error
  }
}

export async function recordRun(sql: Sql, job: string, startedAt: Date, summary: object): Promise<void> {
  await sql`insert into worker_runs (job, started_at, summary) values (${job}, ${startedAt}, ${sql.json(summary as never)})`
}
