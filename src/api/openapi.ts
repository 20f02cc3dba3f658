// What the generated OpenAPI document cannot know from the route schemas of
// the ingestion routes. Their body schemas check only the envelope (each event
// is validated on its own, so that one bad event never fails the others), so
// the document would show events of no shape; and their headers and refusals
// come from plugins. This fills in the event schemas (the same TypeBox
// definitions the per-event validator compiles), X-Client-Queue-Depth,
// X-Client-Queue-Lag (on every route's responses) and Retry-After, and the
// statuses by name.
import { AnalyticsEvent, ErrorResponse, ProgressEvent } from './schemas/events.ts'

type Json = Record<string, unknown>

const INGESTION = [
  { path: '/api/client/progress/batch', event: 'ProgressEvent', batch: true },
  { path: '/api/client/progress/lesson', event: 'ProgressEvent', batch: false },
  { path: '/api/analytics/events/batch', event: 'AnalyticsEvent', batch: true },
  { path: '/api/analytics/events', event: 'AnalyticsEvent', batch: false },
] as const

/**
 * A TypeBox schema as OpenAPI 3.0 reads it (as the route schemas are
 * converted): `enum` for `const`, no `$id`, a free-form object for a record.
 */
function componentSchema(schema: unknown): Json {
  return JSON.parse(JSON.stringify(schema), (key, value: unknown) => {
    if (key === '$id') return undefined
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
    const { const: constant, patternProperties, ...rest } = value as Json
    if (patternProperties) return { type: 'object', additionalProperties: true, description: rest.description }
    return constant === undefined ? rest : { ...rest, enum: [constant] }
  }) as Json
}

const header = (description: string, schema: Json) => ({ description, schema })
const LAG = header('milliseconds the client should add before its next flush (0 while the database answers within LAG_SLO_MS)', { type: 'integer', minimum: 0, maximum: 30000 })
const RETRY_AFTER = header('seconds to wait before retrying', { type: 'integer', minimum: 1 })
const error = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
})
const REFUSALS = {
  400: error('INVALID_JSON, INVALID_BODY, INVALID_TEXT, TOO_MANY_EVENTS or INVALID_HEADER: nothing was written'),
  401: error('UNAUTHORIZED: missing, malformed, expired or wrongly signed token'),
  403: error("FOREIGN_USER: a learner sending another user's events; FORBIDDEN: another org's data"),
  413: error('PAYLOAD_TOO_LARGE: body over MAX_BATCH_BYTES'),
  415: error('UNSUPPORTED_MEDIA_TYPE: not application/json (or not UTF-8), or compressed (Content-Encoding)'),
  429: error('RATE_LIMITED: over RATE_LIMIT_BATCHES_PER_SECOND'),
  503: error('OVERLOADED or IDENTITY_PROVIDER_UNAVAILABLE: nothing was written; DATABASE_UNAVAILABLE: nothing was written, or the database did not answer within 5 s (then a retry is counted once)'),
}
// The read and admin routes' refusals that come from plugins, not their schemas.
const READ_UNAVAILABLE = error('OVERLOADED, DATABASE_UNAVAILABLE (a read the database did not finish within 10 s included) or IDENTITY_PROVIDER_UNAVAILABLE')
/** Statuses whose answers carry Retry-After, whichever route gives them. */
const RETRY_STATUSES = new Set(['429', '503'])

export function describeIngestion({ openapiObject }: { openapiObject: Json }): Json {
  const document = openapiObject as Json & { components?: Json & { schemas?: Json }; paths: Record<string, Record<string, Json>> }
  document.components = {
    ...document.components,
    schemas: {
      ...document.components?.schemas,
      ProgressEvent: componentSchema(ProgressEvent),
      AnalyticsEvent: componentSchema(AnalyticsEvent),
      Error: componentSchema(ErrorResponse),
    },
  }
  for (const { path, event, batch } of INGESTION) {
    const post = document.paths[path]?.post as (Json & { requestBody: { content: Record<string, { schema: Json }> }; responses: Record<string, Json> }) | undefined
    if (!post) continue
    const body = post.requestBody.content['application/json']!
    const ref = { $ref: `#/components/schemas/${event}` }
    if (batch) {
      const events = (body.schema.properties as Record<string, Json>).events!
      events.items = { allOf: [ref], description: 'validated per event: a bad one is rejected by index, the others stored' }
    } else body.schema = ref
    post.parameters = [
      ...((post.parameters as Json[] | undefined) ?? []),
      { in: 'header', name: 'X-Client-Queue-Depth', required: false, description: 'how many events the client still holds', schema: { type: 'integer', minimum: 0, maximum: 999999999 } },
    ]
    const ok = post.responses['200'] as Json
    post.responses = {
      200: { ...ok, description: 'every event accounted for once: accepted, duplicates, deferred or rejected by index' },
      ...REFUSALS,
    }
  }
  for (const [path, operations] of Object.entries(document.paths)) {
    if (!path.startsWith('/api/v1/')) continue
    for (const operation of Object.values(operations)) {
      ;((operation.responses ??= {}) as Record<string, Json>)['503'] ??= READ_UNAVAILABLE
    }
  }
  // Every response carries the lag advice (contract section 4), reads and
  // ingestion's refusals alike, and every 429 and 503 Retry-After: added here
  // once rather than route by route.
  for (const operations of Object.values(document.paths)) {
    for (const operation of Object.values(operations)) {
      for (const [status, response] of Object.entries((operation.responses ?? {}) as Record<string, Json>)) {
        response.headers = {
          'X-Client-Queue-Lag': LAG,
          ...(RETRY_STATUSES.has(status) ? { 'Retry-After': RETRY_AFTER } : {}),
          ...(response.headers as Json | undefined),
        }
      }
    }
  }
  return document
}
