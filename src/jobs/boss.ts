// The one place that constructs pg-boss. Worker processes start it with
// schedules and maintenance on; the API starts it as a producer only (no
// workers, no schedules, no maintenance). Either way every registry
// definition gets its queue, so the API can send to a queue no worker has
// created yet. pg-boss installs and migrates its own schema on start under an
// advisory lock, so any number of processes may start at once.
import { PgBoss, type Queue } from 'pg-boss'
import type { Config } from '../config.ts'
import { readConnectionUrl } from '../db/connection-url.ts'
import { throttled } from '../throttled.ts'
import type { JobDefinition } from './definition.ts'

export const BOSS_SCHEMA = 'pgboss'

const DEFAULT_RETRY_LIMIT = 2
const DEFAULT_EXPIRE_SECONDS = 900
const RETRY_DELAY_SECONDS = 5
// A worker heartbeats its running jobs; one silent this long (a killed
// process) is failed and retried instead of holding its queue until expiry.
const HEARTBEAT_SECONDS = 30
// How often a worker looks for such jobs: pg-boss's supervise pass, which
// checks a queue's heartbeats only when its monitor interval is also due (both
// 60 s by default: a killed worker's job then waited 65 to 80 s, not about 30).
const SUPERVISE_SECONDS = 10

export interface BossOptions {
  url: string
  definitions: JobDefinition[]
  /** `worker` runs cron schedules and pg-boss maintenance; `producer` only sends and reads. */
  role: 'worker' | 'producer'
  /** Needed by workers, whose schedules read it. */
  config?: Pick<Config, 'DAILY_BATCH_CRON'> & Partial<Config>
  max?: number
  applicationName?: string
  onError?: QueueErrorReport
}

/** A background failure, and how many there were since the last report (src/throttled.ts). */
export type QueueErrorReport = (error: Error, occurrences: number) => void

export async function startBoss(options: BossOptions): Promise<PgBoss> {
  const worker = options.role === 'worker'
  // The URL's TLS parameters as the pools read them (node-postgres alone would verify on sslmode=require).
  const { url, pgSsl } = readConnectionUrl(options.url)
  const boss = new PgBoss({
    connectionString: url,
    ssl: pgSsl,
    schema: BOSS_SCHEMA,
    max: options.max ?? (worker ? 4 : 2),
    application_name: options.applicationName ?? `learning-events-${options.role}`,
    instanceName: options.role,
    schedule: worker,
    supervise: worker,
    superviseIntervalSeconds: SUPERVISE_SECONDS,
    monitorIntervalSeconds: SUPERVISE_SECONDS,
    migrate: true,
  })
  // pg-boss reports background failures (a lost connection while polling) as
  // events; without a listener Node would treat them as fatal. Each queue's
  // poller fails every few seconds while the database is down: throttled.
  boss.on('error', options.onError ? throttled(options.onError) : () => {})
  await boss.start()
  try {
    await ensureQueues(boss, options.definitions)
    if (worker) await ensureSchedules(boss, options.definitions, options.config as Config)
  } catch (error) {
    await boss.stop({ graceful: false }).catch(() => {})
    throw error
  }
  return boss
}

function queueOptions(definition: JobDefinition): Omit<Queue, 'name' | 'policy'> {
  return {
    retryLimit: definition.retryLimit ?? DEFAULT_RETRY_LIMIT,
    retryDelay: RETRY_DELAY_SECONDS,
    retryBackoff: true,
    expireInSeconds: definition.expireInSeconds ?? DEFAULT_EXPIRE_SECONDS,
    heartbeatSeconds: HEARTBEAT_SECONDS,
    ...(definition.deleteAfterSeconds === undefined ? {} : { deleteAfterSeconds: definition.deleteAfterSeconds }),
    ...(definition.retentionSeconds === undefined ? {} : { retentionSeconds: definition.retentionSeconds }),
  }
}

/** Creates each definition's queue (idempotent) and brings its retry and expiry options up to date. */
export async function ensureQueues(boss: PgBoss, definitions: JobDefinition[]): Promise<void> {
  for (const definition of definitions) {
    const options = queueOptions(definition)
    await boss.createQueue(definition.name, { policy: definition.policy ?? 'standard', ...options })
    await boss.updateQueue(definition.name, options)
  }
}

/**
 * Schedules every definition with a cron expression, in UTC. pg-boss files
 * each occurrence under a singleton key, so however many workers run the cron
 * pass, one job is created per occurrence; `missed: 'once'` makes a schedule
 * that came due while no worker ran (a deploy, an outage) run once on return.
 */
export async function ensureSchedules(boss: PgBoss, definitions: JobDefinition[], config: Config): Promise<void> {
  for (const definition of definitions) {
    const cron = definition.cron?.(config)
    if (cron) await boss.schedule(definition.name, cron, {}, { tz: 'UTC', missed: 'once' })
    else await boss.unschedule(definition.name)
  }
}
