// `app.jobs`: enqueue and read background jobs from API routes. The API only
// produces: no workers, no schedules and no pg-boss maintenance run here (the
// worker processes, src/workers/main.ts, do those).
import fp from 'fastify-plugin'
import { createJobClient, type JobClient } from '../../jobs/client.ts'
import type { JobDefinition } from '../../jobs/definition.ts'
import { jobs as registry } from '../../workers/registry.ts'

export type { JobSendOptions, JobStatus } from '../../jobs/client.ts'

declare module 'fastify' {
  interface FastifyInstance {
    jobs: Pick<JobClient, 'send' | 'get' | 'find'>
  }
}

export interface JobsPluginOptions {
  url: string
  /** Defaults to every registry definition. */
  definitions?: JobDefinition[]
}

export default fp<JobsPluginOptions>(
  async (app, options) => {
    const client = createJobClient({
      url: options.url,
      definitions: options.definitions ?? registry,
      onError: (error, occurrences) => app.log.warn({ err: error, occurrences }, 'job queue error'),
    })
    app.decorate('jobs', { send: client.send, get: client.get, find: client.find })
    app.addHook('onClose', async () => {
      await client.close()
    })
  },
  { name: 'jobs' },
)
