// Builds the app and listens. Shutdown drains in-flight requests (new ones
// are answered 503, src/api/closing.ts) before the pool closes in onClose.
import http from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.ts'
import { exitAtStart, startFailure, type DatabaseLocation } from '../db/database.ts'
import { loadDevSecrets } from '../dev-secrets.ts'
import { buildApp } from './app.ts'
import { CLOSE_DEADLINE_MS, closeWithin } from './closing.ts'

export interface RunningApi {
  app: FastifyInstance
  url: string
  /** Drains requests in flight, cutting those still open after `deadlineMs`. */
  close(deadlineMs?: number): Promise<void>
}

/** In embedded mode the dev secret signs tokens unless AUTH_JWT_SECRET is given. */
export function withDevSecret(config: Config): Config {
  if (!config.embedded || config.AUTH_JWT_SECRET) return config
  return { ...config, AUTH_JWT_SECRET: loadDevSecrets(config.DATA_DIR).jwtSecret }
}

/** What a listen error means to whoever started the process (`port`: the variable that set the port), or undefined for one that is not about the address. */
const listenProblems = (port: string): Record<string, string> => ({
  EADDRINUSE: `the address is in use (another process listens there: stop it, or set ${port})`,
  EACCES: `permission denied (ports below 1024 need privileges: set ${port})`,
  EADDRNOTAVAIL: 'no such address on this machine (set HOST)',
  // getaddrinfo's: HOST is a name (config refuses what is no name at all) that does not resolve.
  ENOTFOUND: 'no such host (set HOST to an address of this machine, such as 127.0.0.1 or 0.0.0.0)',
  EAI_AGAIN: 'the name in HOST could not be resolved now (DNS unavailable: retry, or set HOST to an IP address)',
  EAI_FAIL: 'the name in HOST could not be resolved (DNS failed: set HOST to an IP address)',
})

/**
 * Starts the API, or stops the process with one line when it cannot (the
 * port taken, say, or a plugin failing to build), closing what the app opened
 * and releasing the database: never a stack trace and an orphaned server.
 */
export async function startApiOrExit(config: Config, database: DatabaseLocation): Promise<RunningApi> {
  let app: FastifyInstance | undefined
  try {
    app = await buildApp({ config: withDevSecret(config), databaseUrl: database.url })
    return await listen(app, config)
  } catch (error) {
    // Only once built is an error the listen's: a plugin's EACCES is not about the port.
    const [variable, port] = error instanceof MetricsListenError ? ['METRICS_PORT', config.METRICS_PORT] : ['PORT', config.PORT]
    const problem = app && listenProblems(variable)[(error as NodeJS.ErrnoException).code ?? '']
    // Building connects to the database (the analytics cache LISTENs), which
    // may refuse this connection although it took the schema check's.
    const line = problem ? `cannot listen on ${config.HOST}:${port}: ${problem}` : startFailure(database, error, 'the API')
    return exitAtStart(database, line, async () => app?.close())
  }
}

async function listen(app: FastifyInstance, config: Config): Promise<RunningApi> {
  // Keep-alive sockets longer than typical proxies (Fly, ALB) so they close first.
  app.server.keepAliveTimeout = 75000
  app.server.headersTimeout = 76000
  app.server.requestTimeout = 30000
  if (config.METRICS_PORT !== undefined) {
    const metrics = await listenForMetrics(app, config.HOST, config.METRICS_PORT)
    app.addHook('onClose', () => new Promise<void>((resolve) => metrics.close(() => resolve())))
  }
  await app.listen({ host: config.HOST, port: config.PORT })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.PORT
  const host = config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST
  let closing: Promise<void> | undefined
  return { app, url: `http://${host}:${port}`, close: (deadlineMs = CLOSE_DEADLINE_MS) => (closing ??= closeWithin(app, deadlineMs)) }
}

class MetricsListenError extends Error {
  readonly code: string | undefined
  constructor(cause: NodeJS.ErrnoException) {
    super(cause.message, { cause })
    this.code = cause.code
  }
}

/**
 * GET /metrics alone, on its own port: on a platform that publishes the API's
 * port (Fly's proxy publishes every path of it), the contract's "bind
 * privately" needs a port the proxy does not publish, which a scraper on the
 * private network reads (fly.toml's [metrics]).
 */
async function listenForMetrics(app: FastifyInstance, host: string, port: number): Promise<http.Server> {
  const { registry } = app.metrics
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0]
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: this port serves GET /metrics only\n')
      return
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(request.method === 'HEAD' ? undefined : text),
      (error: unknown) => {
        app.log.error({ err: error }, 'cannot collect metrics')
        response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics could not be collected\n')
      },
    )
  })
  server.keepAliveTimeout = 75000
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new MetricsListenError(error)))
    server.listen(port, host, () => resolve())
  })
  return server
}
