// Builds the app and listens. Shutdown drains in-flight requests (Fastify
// answers new ones 503 while closing) before the pool closes in onClose.
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.ts'
import { loadDevSecrets } from '../dev-secrets.ts'
import { buildApp } from './app.ts'

export interface RunningApi {
  app: FastifyInstance
  url: string
  close(): Promise<void>
}

/** In embedded mode the dev secret signs tokens unless AUTH_JWT_SECRET is given. */
export function withDevSecret(config: Config): Config {
  if (!config.embedded || config.AUTH_JWT_SECRET) return config
  return { ...config, AUTH_JWT_SECRET: loadDevSecrets(config.DATA_DIR).jwtSecret }
}

export async function startApi(config: Config, databaseUrl: string): Promise<RunningApi> {
  const app = await buildApp({ config: withDevSecret(config), databaseUrl })
  // Keep-alive sockets longer than typical proxies (Fly, ALB) so they close first.
  app.server.keepAliveTimeout = 75000
  app.server.headersTimeout = 76000
  app.server.requestTimeout = 30000
  await app.listen({ host: config.HOST, port: config.PORT })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.PORT
  const host = config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST
  let closing: Promise<void> | undefined
  return { app, url: `http://${host}:${port}`, close: () => (closing ??= app.close()) }
}
