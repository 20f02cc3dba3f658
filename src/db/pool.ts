// postgres.js clients. Parameters are always bound; errors keep parameter
// values out of logs (postgres.js does not print them).
import postgres from 'postgres'
import { readConnectionUrl } from './connection-url.ts'

export type Sql = postgres.Sql

export interface PoolOptions {
  max?: number
  /** Seconds to wait for a connection to be established. */
  connectTimeout?: number
  applicationName?: string
  /**
   * Cap (seconds) on the wait before reconnecting after failed connections.
   * postgres.js backs off up to 20 s, and queries queue behind that wait even
   * once the database is back; the API pool caps it so requests fail or
   * succeed within its 2 s budget (docs/edge.md).
   */
  maxReconnectDelay?: number
}

export function createPool(databaseUrl: string, options: PoolOptions = {}): Sql {
  const { url, ssl } = readConnectionUrl(databaseUrl)
  return postgres(url, {
    ssl,
    max: options.max ?? 10,
    connect_timeout: options.connectTimeout ?? 5,
    idle_timeout: 60,
    // postgres.js's own curve (jittered 3^retries / 100 s), with a configurable cap.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, options.maxReconnectDelay ?? 20),
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? 'learning-events' },
    // bigint counts and sums arrive as JS numbers: every one we return fits in 2^53.
    types: {
      bigint: { to: 20, from: [20], serialize: (value: number) => String(value), parse: (value: string) => Number(value) },
    },
  })
}
