// npm run start:api: the API process alone (fly.toml's `app` group).
// Migrations are the release step's job, except on the embedded database
// (src/db/ready.ts).
import { loadConfigOrExit } from '../config.ts'
import { locateDatabase } from '../db/database.ts'
import { createPool } from '../db/pool.ts'
import { readySchemaOrExit } from '../db/ready.ts'
import { startApiOrExit } from '../api/server.ts'
import { onShutdownSignal } from '../shutdown.ts'

const config = loadConfigOrExit()
const database = await locateDatabase(config, console.log)
const sql = createPool(database.url, { max: 1, applicationName: 'learning-events-api-start' })
await readySchemaOrExit(sql, database, config)
await sql.end()
const api = await startApiOrExit(config, database)
onShutdownSignal(async () => {
  await api.close()
  await database.release()
})
