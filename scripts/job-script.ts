// The shared shape of the one-shot job scripts (npm run partitions, rollup,
// retention:events, replay:dead-letter): find the database as every command
// does, run one job definition in this process (recorded in worker_runs like a
// worker's run), show progress, print a one-line summary. The first Ctrl-C
// stops the job between chunks; a second exits at once.
import pino from 'pino'
import { loadConfigOrExit, type Config } from '../src/config.ts'
import { locateDatabase } from '../src/db/database.ts'
import { createPool, type Sql } from '../src/db/pool.ts'
import { readySchemaOrExit } from '../src/db/ready.ts'
import type { JobDefinition } from '../src/jobs/definition.ts'
import { runJob } from '../src/jobs/runner.ts'
import { signalRepeats } from '../src/shutdown.ts'
import { progressBar } from './progress.ts'

export interface ScriptSession {
  config: Config
  sql: Sql
  close(): Promise<void>
}

/**
 * Config, database (embedded started and migrated if need be) and a pool.
 * `partitions: false` leaves the partitions to the job (migrating makes them).
 */
export async function openSession(name: string, { partitions = true } = {}): Promise<ScriptSession> {
  const config = loadConfigOrExit({ tokens: false })
  const database = await locateDatabase(config, (line) => console.error(line))
  const sql = createPool(database.url, { max: Math.min(config.DB_POOL_MAX, 8), applicationName: `learning-events-${name}` })
  await readySchemaOrExit(sql, database, config, { partitions })
  return {
    config,
    sql,
    async close() {
      await sql.end({ timeout: 5 })
      await database.release()
    },
  }
}

export async function runJobScript<Result extends object>(
  definition: JobDefinition,
  summarize: (result: Result, config: Config) => string,
  session?: ScriptSession,
): Promise<void> {
  const opened = session ?? (await openSession(definition.name))
  const stop = new AbortController()
  const repeat = signalRepeats()
  const onSignal = () => {
    const seen = repeat()
    if (seen === 'again') process.exit(130)
    if (seen === 'copy') return
    console.error(`\nstopping ${definition.name} after the current chunk (Ctrl-C again to quit now)`)
    stop.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const bar = progressBar(definition.name)
  try {
    const result = await runJob(definition, {}, {
      sql: opened.sql,
      config: opened.config,
      log: pino({ level: opened.config.LOG_LEVEL === 'info' ? 'warn' : opened.config.LOG_LEVEL }),
      signal: stop.signal,
      progress: (done, total) => bar.update(done, total),
    })
    bar.stop()
    console.log(summarize(result as Result, opened.config))
  } catch (error) {
    bar.stop()
    console.error(`${definition.name} failed: ${(error as Error).message}`)
    process.exitCode = 1
  } finally {
    await opened.close()
  }
}
