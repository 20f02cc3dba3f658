// The single error handler: maps every failure to the coded catalogue and a
// uniform body { statusCode, code, error, message }. The real message is only
// returned below 500; 5xx bodies never echo internals.
import { STATUS_CODES } from 'node:http'
import type { FastifyBaseLogger, FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { counted } from '../counted.ts'
import { Errors, type ErrorCode } from '../errors.ts'
import { throttled } from '../throttled.ts'
import { PATTERN_WORDS } from './schemas/events.ts'

/** Seconds clients should wait after a 503. */
export const RETRY_AFTER_SECONDS = 2

type CodedError = FastifyError & { code: ErrorCode }

// postgres.js connection failures and transient server conditions: retryable.
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED',
  'CONNECTION_ENDED', 'CONNECTION_DESTROYED',
  '57P01', '57P02', '57P03', // admin shutdown, crash shutdown, cannot connect now
  '53300', // too many connections
  '40P01', '40001', // deadlock (resolved by aborting us), serialization failure
  '57014', // statement timeout
  'WRITE_DEADLINE', // the database did not answer an ingestion write in time (src/api/plugins/ingest.ts)
  'FST_ERR_HANDLER_TIMEOUT', // a read did not finish in time (READ_DEADLINE_MS in src/api/app.ts)
])

// PostgreSQL refusing text the client sent: NUL in a parameter (22021) or in
// json turned into text (22P05), an unpaired surrogate in json (22P02). Routes
// should reject such strings first (ingestion does, per event); this is the
// safety net that keeps any route from answering bad input with a 500.
const UNSTORABLE_TEXT_CODES = new Set(['22021', '22P05', '22P02'])

function validationError(error: FastifyError): CodedError {
  const context = (error as { validationContext?: string }).validationContext
  const first = error.validation?.[0]
  if (context === 'body' && first?.keyword === 'maxItems' && first.instancePath === '/events') {
    return new Errors.TOO_MANY_EVENTS(String((first.params as { limit?: number }).limit ?? '')) as CodedError
  }
  const words = first?.keyword === 'pattern' ? PATTERN_WORDS.get(String(first.params.pattern)) : undefined
  const unknown = first?.keyword === 'additionalProperties' ? String(first.params.additionalProperty) : undefined
  const message = words
    ? `${context}${first!.instancePath} must be ${words}`
    : unknown !== undefined
      ? `${context}${first!.instancePath} has no property ${JSON.stringify(unknown)}`
      : error.message
  const detail = message.replace(/^(body|querystring|params|headers)\/?\s*/, '$1 ')
  if (context === 'querystring') return new Errors.INVALID_QUERY(detail) as CodedError
  if (context === 'params') return new Errors.INVALID_PARAMS(detail) as CodedError
  return new Errors.INVALID_BODY(detail) as CodedError
}

export function toCodedError(error: FastifyError, bodyLimit: number): CodedError {
  if (error.code && error.code in Errors) return error as CodedError
  if (error.validation) return validationError(error)
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new Errors.PAYLOAD_TOO_LARGE(String(bodyLimit)) as CodedError
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new Errors.UNSUPPORTED_MEDIA_TYPE('an unsupported Content-Type') as CodedError
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new Errors.INVALID_PARAMS('the URL is malformed or a path parameter is too long') as CodedError
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new Errors.INVALID_JSON('the body is empty') as CodedError
  }
  if (error.code && UNSTORABLE_TEXT_CODES.has(error.code)) {
    return new Errors.INVALID_TEXT('a string holds a NUL character or an unpaired UTF-16 surrogate') as CodedError
  }
  // A body its client stopped sending (Fastify marks body-stream errors 400):
  // the reset is the client's connection, not the database's.
  if (error.code === 'ECONNRESET' && error.statusCode === 400) return new Errors.MALFORMED_REQUEST() as CodedError
  if (error.code && UNAVAILABLE_CODES.has(error.code)) {
    return new Errors.DATABASE_UNAVAILABLE(String(RETRY_AFTER_SECONDS)) as CodedError
  }
  // Body parser failures (malformed JSON, __proto__ / constructor poisoning).
  if (error.statusCode === 400) return new Errors.INVALID_JSON(error.message.slice(0, 200)) as CodedError
  if (error.statusCode === 429) return new Errors.RATE_LIMITED(counted(Number(error.message.match(/\d+/)?.[0] ?? 1), 'second')) as CodedError
  if (error.statusCode === 503) return new Errors.OVERLOADED(String(RETRY_AFTER_SECONDS)) as CodedError
  return new Errors.INTERNAL() as CodedError
}

export function errorBody(statusCode: number, code: string, message: string) {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message }
}

// 5xx answers that are no bug and are accounted for elsewhere, so get no stack
// trace per request: OVERLOADED is load shedding by design, counted in
// shed_requests_total (a trace per refused request would add work exactly when
// there is too much); an identity provider's outage is warned about by the
// auth plugin, once a minute.
const UNLOGGED_CODES = new Set<string>(['OVERLOADED', 'IDENTITY_PROVIDER_UNAVAILABLE'])

export function createErrorHandler(bodyLimit: number) {
  // A database that is down or refuses connections fails every request while
  // it lasts, and each is answered 503 DATABASE_UNAVAILABLE and counted by
  // status in the metrics: a warning at once, then one a minute with how many
  // requests failed so (src/throttled.ts), not a stack trace per request. The
  // cause is its code and message: a stack would show only the driver's or the
  // deadline's timer.
  const reportUnavailable = throttled(({ error, log }: { error: FastifyError; log: FastifyBaseLogger }, occurrences: number) =>
    log.warn({ cause: { code: error.code, message: error.message }, occurrences }, 'answering 503 DATABASE_UNAVAILABLE'),
  )
  return function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const coded = toCodedError(error, bodyLimit)
    const statusCode = coded.statusCode ?? 500
    if (coded.code === 'DATABASE_UNAVAILABLE') reportUnavailable({ error, log: request.log })
    else if (statusCode >= 500 && !UNLOGGED_CODES.has(coded.code)) request.log.error({ err: error }, 'request failed')
    if ((statusCode === 503 || statusCode === 429) && !reply.hasHeader('retry-after')) {
      reply.header('retry-after', String(statusCode === 503 ? RETRY_AFTER_SECONDS : 1))
    }
    const message = statusCode >= 500 && coded.code === 'INTERNAL' ? 'Internal server error' : coded.message
    return reply.code(statusCode).send(errorBody(statusCode, coded.code, message))
  }
}
