// Stands in for a worker process in tests: takes the queued analytics jobs
// from pg-boss and runs their handlers, as src/workers/main.ts would.
import type { Test } from 'tap'
import pino from 'pino'
import { analyticsJobs } from '../../src/analytics/jobs.ts'
import type { Config } from '../../src/config.ts'
import type { Sql } from '../../src/db/pool.ts'
import { startBoss } from '../../src/jobs/boss.ts'
import { jobs as registry } from '../../src/workers/registry.ts'

export interface TestWorker {
  /** Runs every job queued on `queue` now; resolves to how many ran. */
  drain(queue: string): Promise<number>
}

export async function testWorker(t: Test, url: string, sql: Sql): Promise<TestWorker> {
  const boss = await startBoss({ url, definitions: registry, role: 'producer', applicationName: 'test-worker' })
  t.teardown(() => boss.stop({ graceful: false, close: true }))
  const context = {
    sql,
    config: { DB_POOL_MAX: 4 } as Config,
    log: pino({ level: 'silent' }),
    signal: new AbortController().signal,
  }
  return {
    async drain(queue) {
      const definition = analyticsJobs.find((candidate) => candidate.name === queue)
      if (!definition) throw new Error(`no analytics job ${queue}`)
      let ran = 0
      for (;;) {
        const batch = await boss.fetch<object>(queue, { batchSize: 20 })
        if (batch.length === 0) return ran
        for (const job of batch) {
          const output = await definition.handler(job.data, { ...context, jobId: job.id })
          await boss.complete(queue, job.id, output ?? {})
          ran++
        }
      }
    },
  }
}
