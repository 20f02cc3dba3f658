// The schema step of a process's start. The embedded database (a laptop) is
// migrated on the spot, as is any database by `npm start` and `seed:demo`. For
// the production processes a DATABASE_URL database is migrated by the release
// step (`npm run migrate`, fly.toml's release_command), so there it is only
// checked. Either way a database this code cannot use stops the process with
// one line saying what to do, instead of a stack trace from the first query,
// a crash loop, or a 500 on every request.
import type { Config } from '../config.ts'
import { cannotUseDatabase, exitAtStart, type DatabaseLocation } from './database.ts'
import { migrate, MigrationError, pendingMigrations } from './migrate.ts'
import type { Sql } from './pool.ts'

export async function readySchemaOrExit(
  sql: Sql,
  database: DatabaseLocation,
  config: Pick<Config, 'RETENTION_DAYS' | 'PARTITIONS_AHEAD_DAYS'>,
  // Each migration applied is said (on stderr unless the caller says where):
  // an embedded database is upgraded by whichever command opens it first.
  { migrate: migrates = database.embedded, partitions, log = console.error }: { migrate?: boolean; partitions?: boolean; log?: (line: string) => void } = {},
): Promise<void> {
  let problem: string
  try {
    if (migrates) {
      await migrate(sql, { retentionDays: config.RETENTION_DAYS, aheadDays: config.PARTITIONS_AHEAD_DAYS, partitions, log })
      return
    }
    const pending = await pendingMigrations(sql)
    if (pending.length === 0) return
    problem = `the database at DATABASE_URL lacks ${pending.length} migration(s) this code needs (from sql/${pending[0]}): run npm run migrate against it first`
  } catch (error) {
    problem = error instanceof MigrationError ? error.message : cannotUseDatabase(database, error)
  }
  await exitAtStart(database, problem, () => sql.end({ timeout: 1 }))
}
