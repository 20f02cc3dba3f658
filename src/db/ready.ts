// The schema step of a process's start. The embedded database (a laptop) is
// migrated on the spot, as is any database by `npm start` and `seed:demo`. For
// the production processes a DATABASE_URL database is migrated by the release
// step (`npm run migrate`, fly.toml's release_command), so there it is only
// checked. Either way a database this code cannot use stops the process with
// one line saying what to do, instead of a stack trace from the first query,
// a crash loop, or a 500 on every request.
import type { Config } from '../config.ts'
import type { DatabaseLocation } from './database.ts'
import { migrate, MigrationError, pendingMigrations } from './migrate.ts'
import type { Sql } from './pool.ts'

type SchemaConfig = Pick<Config, 'RETENTION_DAYS' | 'PARTITIONS_AHEAD_DAYS'>

export async function readySchemaOrExit(
  sql: Sql,
  database: DatabaseLocation,
  config: SchemaConfig,
  options: { migrate?: boolean; log?: (line: string) => void } = {},
): Promise<void> {
  const problem = await schemaProblem(sql, database, config, { migrate: database.embedded, ...options })
  if (problem === undefined) return
  process.stderr.write(`${problem}\n`)
  await sql.end({ timeout: 1 }).catch(() => {})
  await database.release() // an embedded server this process started must not outlive it
  process.exit(1)
}

async function schemaProblem(
  sql: Sql,
  database: DatabaseLocation,
  config: SchemaConfig,
  options: { migrate: boolean; log?: (line: string) => void },
): Promise<string | undefined> {
  try {
    if (options.migrate) {
      await migrate(sql, { retentionDays: config.RETENTION_DAYS, aheadDays: config.PARTITIONS_AHEAD_DAYS, ...(options.log ? { log: options.log } : {}) })
      return undefined
    }
    const pending = await pendingMigrations(sql)
    if (pending.length === 0) return undefined
    return `the database at DATABASE_URL lacks ${pending.length} migration(s) this code needs (from sql/${pending[0]}): run npm run migrate against it first`
  } catch (error) {
    if (error instanceof MigrationError) return error.message
    return `cannot use the database${database.embedded ? '' : ' at DATABASE_URL'}: ${(error as Error).message}`
  }
}
