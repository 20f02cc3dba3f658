// npm run migrate: applies sql/ migrations to the database the config points at.
import { loadConfigOrExit } from '../src/config.ts'
import { locateDatabase } from '../src/db/database.ts'
import { migrate } from '../src/db/migrate.ts'
import { createPool } from '../src/db/pool.ts'
import { parseCliArgs } from './cli-args.ts'

// It takes no options: a mistyped one must not go unnoticed on a production database.
parseCliArgs('usage: npm run migrate (applies sql/ to DATABASE_URL, or the embedded database in DATA_DIR)', { options: {} })
const config = loadConfigOrExit({ tokens: false })
const database = await locateDatabase(config, console.log)
const sql = createPool(database.url, { max: 1, applicationName: 'migrate' })
try {
  const applied = await migrate(sql, { retentionDays: config.RETENTION_DAYS, aheadDays: config.PARTITIONS_AHEAD_DAYS, log: console.log })
  console.log(applied.length ? `applied ${applied.length} migration(s)` : 'database is up to date')
} catch (error) {
  console.error(`migrate failed: ${(error as Error).message}`)
  process.exitCode = 1
} finally {
  await sql.end()
  await database.release()
}
