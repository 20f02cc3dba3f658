// Sending and reading jobs from a process that does not run them (the API).
// pg-boss is started on first use, so an API instance that never enqueues
// never opens its connections; a failed start is retried on the next call.
import type { PgBoss, SendOptions } from 'pg-boss'
import type { JobDefinition } from './definition.ts'
import { startBoss, type QueueErrorReport } from './boss.ts'

export type JobState = 'created' | 'retry' | 'active' | 'completed' | 'cancelled' | 'failed'

export interface JobStatus {
  id: string
  name: string
  state: JobState
  createdAt: string
  startedAt: string | null
  completedAt: string | null
  /** The failure message of a failed (or retrying) job. */
  error?: string
  data: object
  /** What the handler returned, once completed. */
  output: object | null
}

export type JobSendOptions = Omit<SendOptions, 'db'>

export interface JobClient {
  /** Enqueues a job on a registry queue; resolves to its id. */
  send(name: string, data: object, options?: JobSendOptions): Promise<string>
  /** A job of a known queue, or null when there is no such job. */
  get(name: string, jobId: string): Promise<JobStatus | null>
  /** A job of any registry queue, by id alone. */
  find(jobId: string): Promise<JobStatus | null>
  close(): Promise<void>
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export class UnknownJobError extends Error {}

export function createJobClient(options: { url: string; definitions: JobDefinition[]; onError?: QueueErrorReport }): JobClient {
  const names = new Set(options.definitions.map((definition) => definition.name))
  let starting: Promise<PgBoss> | undefined
  let closed = false

  const boss = (): Promise<PgBoss> => {
    if (closed) return Promise.reject(new Error('the job client is closed'))
    starting ??= startBoss({ url: options.url, definitions: options.definitions, role: 'producer', ...(options.onError ? { onError: options.onError } : {}) })
    starting.catch(() => (starting = undefined))
    return starting
  }

  const get = async (name: string, jobId: string): Promise<JobStatus | null> => {
    if (!names.has(name) || !UUID.test(jobId)) return null
    const [found] = await (await boss()).findJobs(name, { id: jobId })
    return found ? toStatus(found) : null
  }

  return {
    async send(name, data, sendOptions = {}) {
      if (!names.has(name)) throw new UnknownJobError(`no job definition is named ${name}`)
      const id = await (await boss()).send(name, data, sendOptions)
      // Only a singleton or throttled send is ever refused; say so rather than return no id.
      if (id === null) throw new Error(`job ${name} was not queued (a singleton or throttled duplicate)`)
      return id
    },
    get,
    async find(jobId) {
      if (!UUID.test(jobId)) return null
      for (const name of names) {
        const status = await get(name, jobId)
        if (status) return status
      }
      return null
    },
    async close() {
      closed = true
      const running = starting
      starting = undefined
      if (running) await (await running.catch(() => undefined))?.stop({ graceful: false, close: true })
    },
  }
}

interface FoundJob {
  id: string
  name: string
  state: JobState
  data: unknown
  output: unknown
  createdOn: Date
  startedOn: Date | null
  completedOn: Date | null
}

function toStatus(job: FoundJob): JobStatus {
  const output = job.output && typeof job.output === 'object' ? (job.output as Record<string, unknown>) : null
  const failed = job.state === 'failed' || job.state === 'retry'
  const started = job.state !== 'created' && job.startedOn ? job.startedOn.toISOString() : null
  return {
    id: job.id,
    name: job.name,
    state: job.state,
    createdAt: job.createdOn.toISOString(),
    startedAt: started,
    completedAt: job.completedOn ? job.completedOn.toISOString() : null,
    ...(failed && output ? { error: typeof output.message === 'string' ? output.message : 'job failed' } : {}),
    data: (job.data ?? {}) as object,
    output: failed ? null : output,
  }
}
