// What a background job is, independent of the queue library that runs it.
// Worker processes run every definition in src/workers/registry.ts; the API
// enqueues by name through `app.jobs` (src/api/plugins/jobs.ts).
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import type { Sql } from '../db/pool.ts'

export interface JobContext {
  sql: Sql
  config: Config
  log: Logger
  /** Aborted on SIGTERM: handlers stop between bounded chunks. */
  signal: AbortSignal
  /** The queue job id, when run by a worker. */
  jobId?: string
  /** Reports how far a run has got (one-shot scripts draw a progress bar from it). */
  progress?: (done: number, total: number) => void
}

export interface JobDefinition<Data extends object = object> {
  /** Queue name, also the `npm run` one-shot's job name where there is one. */
  name: string
  /** UTC cron schedule, if the job also runs on a schedule. */
  cron?: (config: Config) => string | undefined
  /** Jobs of this queue one worker process runs at once. */
  concurrency?: number
  /** Attempts after the first failure. */
  retryLimit?: number
  /** Seconds a run may take before it is retried. */
  expireInSeconds?: number
  /**
   * Seconds a finished job, its data and output included, is kept before
   * pg-boss deletes it (pg-boss's default: 7 days). Queues whose data names a
   * learner use PERSONAL_JOB_KEEP_SECONDS.
   */
  deleteAfterSeconds?: number
  /** Seconds a job may wait for a worker before pg-boss deletes it unrun (pg-boss's default: 14 days). */
  retentionSeconds?: number
  /**
   * pg-boss queue policy, fixed when the queue is first created. `stately`
   * (at most one queued and one active job) suits maintenance jobs whose runs
   * must not pile up or overlap; the default `standard` queues every send.
   */
  policy?: 'standard' | 'stately' | 'singleton'
  handler(data: Data, context: JobContext): Promise<object | void>
}

/**
 * A job naming a learner (an erasure, a recompute) is kept a day after it
 * ends: long enough for its requester to read the outcome from
 * GET /api/v1/jobs/:jobId the next morning, not the week pg-boss would keep
 * an erased learner's id by default. (Every run, failed ones included, is
 * also in worker_runs, without the user id, for the retention window.)
 */
export const PERSONAL_JOB_KEEP_SECONDS = 24 * 3600

/** Erases the type of a definition's data so definitions can share a list. */
export function job<Data extends object>(definition: JobDefinition<Data>): JobDefinition {
  return definition as unknown as JobDefinition
}
