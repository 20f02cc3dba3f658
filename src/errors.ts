// The one catalogue of coded errors. Every whole-request failure the API can
// answer with is here, mapped to its HTTP status; docs/errors.md documents each
// code and a test fails when one is missing there.
import { maxHeaderSize } from 'node:http'
import createError from '@fastify/error'

export const Errors = {
  INVALID_JSON: createError('INVALID_JSON', 'Request body is not valid JSON: %s', 400),
  INVALID_BODY: createError('INVALID_BODY', 'Request body is invalid: %s', 400),
  INVALID_QUERY: createError('INVALID_QUERY', 'Query string is invalid: %s', 400),
  INVALID_PARAMS: createError('INVALID_PARAMS', 'Path parameters are invalid: %s', 400),
  INVALID_HEADER: createError('INVALID_HEADER', 'Request header is invalid: %s', 400),
  INVALID_TEXT: createError('INVALID_TEXT', 'Text cannot be stored: %s', 400),
  TOO_MANY_EVENTS: createError('TOO_MANY_EVENTS', 'A batch may hold at most %s events', 400),
  RANGE_TOO_LARGE: createError('RANGE_TOO_LARGE', 'The range asked for holds too many rows: %s', 400),
  UNAUTHORIZED: createError('UNAUTHORIZED', 'Authentication required: %s', 401),
  FORBIDDEN: createError('FORBIDDEN', 'Not allowed: %s', 403),
  // Its own code because it alone is one event's fault: a client (the SDK) can
  // find that event and drop it, where any other 403 keeps its events.
  FOREIGN_USER: createError('FOREIGN_USER', 'Not allowed: %s', 403),
  NOT_FOUND: createError('NOT_FOUND', 'Not found: %s', 404),
  METHOD_NOT_ALLOWED: createError('METHOD_NOT_ALLOWED', 'Method not allowed: %s', 405),
  PAYLOAD_TOO_LARGE: createError('PAYLOAD_TOO_LARGE', 'Request body is larger than %s bytes', 413),
  UNSUPPORTED_MEDIA_TYPE: createError('UNSUPPORTED_MEDIA_TYPE', 'Request body must be uncompressed application/json: got %s', 415),
  // Refused by Node's HTTP parser, before any route (src/api/client-error.ts).
  MALFORMED_REQUEST: createError('MALFORMED_REQUEST', 'The request is not valid HTTP/1.1, or its body stopped short', 400),
  REQUEST_TIMEOUT: createError('REQUEST_TIMEOUT', 'The request did not arrive in time', 408),
  HEADERS_TOO_LARGE: createError('HEADERS_TOO_LARGE', `Request headers are larger than ${maxHeaderSize} bytes`, 431),
  RATE_LIMITED: createError('RATE_LIMITED', 'Rate limit exceeded: retry in %s', 429),
  OVERLOADED: createError('OVERLOADED', 'Service is overloaded: retry in %s seconds', 503),
  DATABASE_UNAVAILABLE: createError('DATABASE_UNAVAILABLE', 'Database is unavailable: retry in %s seconds', 503),
  IDENTITY_PROVIDER_UNAVAILABLE: createError('IDENTITY_PROVIDER_UNAVAILABLE', 'Identity provider keys could not be fetched: retry in %s seconds', 503),
  INTERNAL: createError('INTERNAL', 'Internal server error', 500),
} as const

export type ErrorCode = keyof typeof Errors

/** Per-event rejection codes inside a 200 response (contract section 4). */
export const RejectionCodes = {
  invalid_event: 'The event does not match the event schema',
  too_old: 'occurredAt is older than the retention window',
  in_future: 'occurredAt is too far ahead of server time',
} as const

export type RejectionCode = keyof typeof RejectionCodes
