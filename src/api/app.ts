// Composes the API: plugins first, then routes, and the single error handler.
// It never listens; src/api/server.ts does.
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import swagger from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from '../config.ts'
import { Errors } from '../errors.ts'
import { createErrorHandler, errorBody } from './error-handler.ts'
import authPlugin from './plugins/auth.ts'
import databasePlugin from './plugins/database.ts'
import ingestPlugin from './plugins/ingest.ts'
import adminRoutes from './routes/admin.ts'
import healthRoutes from './routes/health.ts'
import ingestRoutes from './routes/ingest.ts'
import progressRoutes from './routes/progress.ts'

export type AppConfig = Pick<
  Config,
  | 'MAX_BATCH_EVENTS'
  | 'MAX_BATCH_BYTES'
  | 'RETENTION_DAYS'
  | 'MAX_FUTURE_MS'
  | 'LAG_SLO_MS'
  | 'AUTH_JWT_SECRET'
  | 'AUTH_JWKS_URL'
  | 'AUTH_ISSUER'
  | 'AUTH_AUDIENCE'
  | 'DB_POOL_MAX'
  | 'LOG_LEVEL'
>

export interface AppOptions {
  config: AppConfig
  databaseUrl: string
  logger?: FastifyServerOptions['logger']
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config } = options
  const app = Fastify({
    logger: options.logger ?? {
      level: config.LOG_LEVEL,
      redact: { paths: ['req.headers.authorization'], censor: '[redacted]' },
    },
    bodyLimit: config.MAX_BATCH_BYTES,
    genReqId: (request) => {
      const given = request.headers['x-request-id']
      return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : crypto.randomUUID()
    },
    requestIdHeader: false,
    // One line per request, from our onResponse hook, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      { method: request.method, url: request.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 },
      'request completed',
    )
  })

  await app.register(swagger, {
    openapi: {
      info: { title: 'Learning-events ingestion API', version: '0.1.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  })
  app.get('/documentation/json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger())

  await app.register(databasePlugin, { url: options.databaseUrl, poolMax: config.DB_POOL_MAX })
  await app.register(authPlugin, {
    ...(config.AUTH_JWT_SECRET ? { secret: config.AUTH_JWT_SECRET } : {}),
    ...(config.AUTH_JWKS_URL ? { jwksUrl: config.AUTH_JWKS_URL } : {}),
    ...(config.AUTH_ISSUER ? { issuer: config.AUTH_ISSUER } : {}),
    ...(config.AUTH_AUDIENCE ? { audience: config.AUTH_AUDIENCE } : {}),
  })
  await app.register(ingestPlugin, { lagSloMs: config.LAG_SLO_MS })

  app.setErrorHandler(createErrorHandler(config.MAX_BATCH_BYTES))
  app.setNotFoundHandler((request, reply) => {
    const error = new Errors.NOT_FOUND(`${request.method} ${request.url.split('?')[0]}`)
    return reply.code(404).send(errorBody(404, error.code, error.message))
  })

  await app.register(healthRoutes)
  await app.register(ingestRoutes, {
    writer: app.writer,
    maxBatchEvents: config.MAX_BATCH_EVENTS,
    window: { retentionDays: config.RETENTION_DAYS, maxFutureMs: config.MAX_FUTURE_MS },
  })
  await app.register(adminRoutes)
  await app.register(progressRoutes)
  return app
}
