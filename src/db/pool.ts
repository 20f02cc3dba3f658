// postgres.js clients. Parameters are always bound; errors keep parameter
// values out of logs (postgres.js does not print them).
import postgres from 'postgres'

export type Sql = postgres.Sql

export interface PoolOptions {
  max?: number
  /** Seconds to wait for a connection to be established. */
  connectTimeout?: number
  applicationName?: string
}

export function createPool(url: string, options: PoolOptions = {}): Sql {
  return postgres(url, {
    max: options.max ?? 10,
    connect_timeout: options.connectTimeout ?? 5,
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? 'learning-events' },
    // bigint counts and sums arrive as JS numbers: every one we return fits in 2^53.
    types: {
      bigint: { to: 20, from: [20], serialize: (value: number) => String(value), parse: (value: string) => Number(value) },
    },
  })
}
