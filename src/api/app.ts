// Composes the API: plugins first, then routes, and the single error handler.
// It never listens; src/api/server.ts does.
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { DestinationStream } from 'pino'
import swagger from '@fastify/swagger'
import AjvCompiler from '@fastify/ajv-compiler'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import analyticsPlugin, { analyticsSettings } from '../analytics/plugin.ts'
import { checkedClaims } from '../auth/tokens.ts'
import type { Config } from '../config.ts'
import { Errors } from '../errors.ts'
import { answerClientError } from './client-error.ts'
import { closeGracefully } from './closing.ts'
import { createErrorHandler, errorBody } from './error-handler.ts'
import { parseJsonBodiesStrictly } from './json-body.ts'
import { describeIngestion } from './openapi.ts'
import { trackRouteMethods } from './route-methods.ts'
import authPlugin from './plugins/auth.ts'
import clientQueuePlugin from './plugins/client-queue.ts'
import corsPlugin, { parseOrigins } from './plugins/cors.ts'
import databasePlugin from './plugins/database.ts'
import ingestPlugin from './plugins/ingest.ts'
import jobsPlugin from './plugins/jobs.ts'
import metricsPlugin from './plugins/metrics.ts'
import rateLimitPlugin from './plugins/rate-limit.ts'
import sheddingPlugin, { type PressureLimits } from './plugins/shedding.ts'
import adminRoutes from './routes/admin.ts'
import analyticsRoutes from './routes/analytics.ts'
import cohortRoutes from './routes/cohorts.ts'
import jobRoutes from './routes/jobs.ts'
import demoRoutes from './routes/demo.ts'
import healthRoutes from './routes/health.ts'
import ingestRoutes from './routes/ingest.ts'
import progressRoutes from './routes/progress.ts'
import erasureRoutes from './routes/erasure.ts'
import rollupRoutes from './routes/rollups.ts'

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
  | 'GROUP_COMMIT'
  | 'LOG_LEVEL'
  | 'RATE_LIMIT_BATCHES_PER_SECOND'
  | 'REDIS_URL'
  | 'CORS_ORIGINS'
> &
  // Optional so that callers building the app by hand get the schema defaults.
  Partial<Pick<Config, 'STALE_AFTER_MS' | 'REFRESH_LIMIT' | 'METRICS_PORT'>>

/**
 * The compression a request body was sent with, named for a 415, or undefined
 * when it has none (or no body: a health check's stray header is no reason to refuse it).
 */
function bodyEncoding(headers: IncomingHttpHeaders): string | undefined {
  const length = headers['content-length']
  if ((length === undefined || length === '0') && headers['transfer-encoding'] === undefined) return undefined
  const content = headers['content-encoding']?.trim().toLowerCase()
  if (content && content !== 'identity') return `Content-Encoding ${content.slice(0, 40)}`
  const transfer = headers['transfer-encoding']?.toLowerCase()
  if (transfer?.split(',').some((coding) => coding.trim() !== 'chunked')) return `Transfer-Encoding ${transfer.slice(0, 40)}`
  return undefined
}

/** How long an authenticated read may take before 503: well above a healthy one, even under overload. */
export const READ_DEADLINE_MS = 10_000

/** Edge-protection knobs that are not environment settings (docs/edge.md). */
export interface EdgeOptions {
  pressure?: PressureLimits
  /** Ingestion calls in flight per pool connection before 503 OVERLOADED, while a queue stands. */
  inFlightPerConnection?: number
  /** How many times that many are admitted while no queue stands (1 turns bursts off). */
  burstFactor?: number
  /** How long an ingestion write may wait for the database before 503 (default WRITE_DEADLINE_MS). */
  writeDeadlineMs?: number
  redisKeyPrefix?: string
  processMetrics?: boolean
}

export interface AppOptions {
  config: AppConfig
  databaseUrl: string
  logger?: FastifyServerOptions['logger']
  /** Where the default logger writes (stdout when unset); tests capture it. */
  logStream?: DestinationStream
  edge?: EdgeOptions
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config } = options
  const errorHandler = createErrorHandler(config.MAX_BATCH_BYTES)
  const app = Fastify({
    logger: options.logger ?? {
      level: config.LOG_LEVEL,
      // Wherever a request's headers end up in a log line, the token does not.
      redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.headers.authorization'], censor: '[redacted]' },
      ...(options.logStream ? { stream: options.logStream } : {}),
    },
    bodyLimit: config.MAX_BATCH_BYTES,
    // Ids may be 128 characters (contract); longer ones fail validation with a coded 400.
    routerOptions: { maxParamLength: 512 },
    genReqId: (request) => {
      const given = request.headers['x-request-id']
      return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : crypto.randomUUID()
    },
    requestIdHeader: false,
    // One line per request, from our onResponse hook, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Answered by closeGracefully, with a code and Retry-After.
    return503OnClosing: false,
    // coerceTypes true, not Fastify's 'array': `{"events": 5}` must be a 400, not a batch of one.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, allErrors: false } },
    schemaController: { compilersFactory: { buildValidator: bodiesAsSent } },
    // Malformed URLs and over-long path parameters go through the coded catalogue
    // too, and carry the headers every answer does (no hook runs for them).
    clientErrorHandler: answerClientError,
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id).header('x-client-queue-lag', String(app.lag.lagMs()))
      return errorHandler(error, request, reply)
    },
  }).withTypeProvider<TypeBoxTypeProvider>()
  const allowedMethods = trackRouteMethods(app)

  // JSON only: Fastify's built-in text/plain parser would let a text body reach validation.
  app.removeContentTypeParser('text/plain')
  parseJsonBodiesStrictly(app, 'error')
  // Bodies are read as sent: a compressed one would otherwise fail as
  // INVALID_JSON, which does not tell its client what to change. A callback
  // hook, not an async one: every batch runs it, and the promise cost 2-3 µs.
  app.addHook('preParsing', (request, _reply, payload, done) => {
    const encoding = bodyEncoding(request.headers)
    if (encoding !== undefined) return done(new Errors.UNSUPPORTED_MEDIA_TYPE(encoding))
    done(null, payload)
  })

  // Authenticated reads wait on nothing but the database: one that hangs with
  // the pool's connections open (frozen, its disk stalled) is answered 503
  // DATABASE_UNAVAILABLE (FST_ERR_HANDLER_TIMEOUT) rather than never.
  // Ingestion has its own, shorter deadline on the write alone; admin writes,
  // which may be long, none.
  app.addHook('onRoute', (route) => {
    const reads = [route.method].flat().every((method) => method === 'GET' || method === 'HEAD')
    if (reads && !route.config?.public) route.handlerTimeout ??= READ_DEADLINE_MS
  })
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
    transformObject: (document) => describeIngestion(document as { openapiObject: Record<string, unknown> }),
  })
  app.get('/documentation/json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger())

  // Before auth: their onRequest hooks run first, so 401s still carry CORS
  // headers and an overloaded process refuses before verifying tokens.
  const edge = options.edge ?? {}
  await app.register(metricsPlugin, { processMetrics: edge.processMetrics ?? true, route: config.METRICS_PORT === undefined })
  await app.register(corsPlugin, { origins: parseOrigins(config.CORS_ORIGINS) })
  closeGracefully(app)
  await app.register(sheddingPlugin, {
    poolMax: config.DB_POOL_MAX,
    ...(edge.inFlightPerConnection ? { inFlightPerConnection: edge.inFlightPerConnection } : {}),
    ...(edge.burstFactor ? { burstFactor: edge.burstFactor } : {}),
    ...(edge.pressure ? { pressure: edge.pressure } : {}),
  })
  await app.register(databasePlugin, { url: options.databaseUrl, poolMax: config.DB_POOL_MAX })
  await app.register(authPlugin, {
    ...(config.AUTH_JWT_SECRET ? { secret: config.AUTH_JWT_SECRET } : {}),
    ...(config.AUTH_JWKS_URL ? { jwksUrl: config.AUTH_JWKS_URL } : {}),
    ...checkedClaims(config),
  })
  await app.register(rateLimitPlugin, {
    batchesPerSecond: config.RATE_LIMIT_BATCHES_PER_SECOND,
    ...(config.REDIS_URL ? { redisUrl: config.REDIS_URL } : {}),
    ...(edge.redisKeyPrefix ? { redisKeyPrefix: edge.redisKeyPrefix } : {}),
  })
  await app.register(clientQueuePlugin)
  await app.register(ingestPlugin, {
    lagSloMs: config.LAG_SLO_MS,
    groupCommit: config.GROUP_COMMIT,
    ...(edge.writeDeadlineMs ? { writeDeadlineMs: edge.writeDeadlineMs } : {}),
  })
  await app.register(jobsPlugin, { url: options.databaseUrl })
  const analytics = analyticsSettings(config)
  await app.register(analyticsPlugin, { staleAfterMs: analytics.staleAfterMs })

  app.setErrorHandler(errorHandler)
  const answerUnmatched = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!
    const allowed = allowedMethods(path)
    if (allowed.length > 0) {
      const error = new Errors.METHOD_NOT_ALLOWED(`${path} takes ${allowed.join(', ')}`)
      return reply.code(405).header('allow', allowed.join(', ')).send(errorBody(405, error.code, error.message))
    }
    const error = new Errors.NOT_FOUND(`${request.method} ${path}`)
    return reply.code(404).send(errorBody(404, error.code, error.message))
  }
  // Before the body is read (after CORS and shedding): whatever the body holds,
  // a path asked with a method it does not take is 405, not 400 INVALID_JSON.
  app.addHook('onRequest', async (request, reply) => {
    if (request.is404) return answerUnmatched(request, reply)
  })
  app.setNotFoundHandler(answerUnmatched)

  await app.register(healthRoutes)
  await app.register(ingestRoutes, {
    writer: app.writer,
    maxBatchEvents: config.MAX_BATCH_EVENTS,
    window: { retentionDays: config.RETENTION_DAYS, maxFutureMs: config.MAX_FUTURE_MS },
  })
  await app.register(adminRoutes, { retentionDays: config.RETENTION_DAYS })
  await app.register(progressRoutes)
  await app.register(rollupRoutes)
  await app.register(erasureRoutes)
  await app.register(demoRoutes)
  await app.register(analyticsRoutes, { refreshLimit: analytics.refreshLimit })
  await app.register(cohortRoutes, { staleAfterMs: analytics.staleAfterMs })
  await app.register(jobRoutes)
  return app
}

const ajvCompilers = AjvCompiler()
type BuildValidator = AjvCompiler.BuildCompilerFromPool
type RouteSchema = { httpPart?: string; schema: unknown }

/**
 * Query strings, path parameters and headers arrive as text, so they are
 * coerced to their schemas' types; a JSON body is validated as sent: an admin
 * body's `"lessonCount": "0x10"`, `true` or `null` is a 400, not 16, 1 or 0
 * stored, and a `"userId": 42` is not stored as "42".
 */
const bodiesAsSent: BuildValidator = (externalSchemas, ajvOptions) => {
  const options = (ajvOptions ?? {}) as { customOptions?: object }
  const coercing = ajvCompilers(externalSchemas, options) as unknown as (route: RouteSchema) => unknown
  const exact = ajvCompilers(externalSchemas, { ...options, customOptions: { ...options.customOptions, coerceTypes: false } }) as unknown as (route: RouteSchema) => unknown
  return ((route: RouteSchema) => (route.httpPart === 'body' ? exact : coercing)(route)) as ReturnType<BuildValidator>
}
