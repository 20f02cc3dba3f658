// npm run start:worker: keeps partitions ready (at start and hourly) until SIGTERM.
// (Rollups, retention, replay and erasure jobs join this process.)
import { loadConfigOrExit } from '../config.ts'
import { locateDatabase } from '../db/database.ts'
import { ensurePartitions } from '../db/migrate.ts'
import { createPool } from '../db/pool.ts'
import { onShutdownSignal } from '../shutdown.ts'

const HOUR_MS = 3600000
const config = loadConfigOrExit()
const database = await locateDatabase(config)
const sql = createPool(database.url, { max: 2, applicationName: 'learning-events-worker' })

async function upkeep(): Promise<void> {
  const started = new Date()
  const created = await ensurePartitions(sql, config.RETENTION_DAYS, config.PARTITIONS_AHEAD_DAYS)
  await sql`insert into worker_runs (job, started_at, summary) values ('partitions', ${started}, ${sql.json({ created })})`
}

await upkeep()
const timer = setInterval(() => upkeep().catch((error: Error) => console.error(`partition upkeep failed: ${error.message}`)), HOUR_MS)
onShutdownSignal(async () => {
  clearInterval(timer)
  await sql.end({ timeout: 5 })
  await database.release()
})
