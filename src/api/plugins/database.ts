// The API's database pool, opened at registration and closed with the app.
import fp from 'fastify-plugin'
import { createPool, type Sql } from '../../db/pool.ts'
import { createDb, type Db } from '../../db/tables.ts'

declare module 'fastify' {
  interface FastifyInstance {
    sql: Sql
    db: Db
  }
}

export interface DatabasePluginOptions {
  url: string
  poolMax: number
}

export default fp<DatabasePluginOptions>(
  async (app, options) => {
    // Short connect timeout and reconnect backoff: with the database unreachable
    // ingestion must answer 503 DATABASE_UNAVAILABLE within 2 s rather than hang,
    // and recover as soon as it is back (docs/edge.md).
    const sql = createPool(options.url, {
      max: options.poolMax,
      applicationName: 'learning-events-api',
      connectTimeout: 1.5,
      maxReconnectDelay: 0.25,
    })
    app.decorate('sql', sql)
    app.decorate('db', createDb(sql))
    app.addHook('onClose', async () => {
      await sql.end({ timeout: 5 })
    })
  },
  { name: 'database' },
)
