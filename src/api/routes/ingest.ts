// The four ingestion routes (contract section 4). Each request is validated
// per event and written with exactly one stored-procedure call.
import type { FastifyPluginAsync } from 'fastify'
import type { Principal } from '../../auth/principal.ts'
import type { BatchWriter, Outcomes } from '../../ingest/writer.ts'
import { prepareAnalytics, prepareProgress, type Prepared, type Stream, type TimeWindow } from '../../ingest/validate.ts'
import { parseJsonBodiesStrictly } from '../json-body.ts'
import { batchBody, ErrorResponse, IngestResponse, SingleEventBody, type BatchBody, type IngestResponse as Response } from '../schemas/events.ts'

export interface IngestRoutesOptions {
  writer: BatchWriter
  maxBatchEvents: number
  window: TimeWindow
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Marks the ingestion routes, for rate limits, lag and metrics. */
    ingest?: Stream
  }
}

export function summarize(outcomes: Outcomes, prepared: Prepared<unknown>): Response {
  let accepted = 0
  let duplicates = 0
  let deferred = 0
  for (const outcome of outcomes) {
    if (outcome === 'a') accepted++
    else if (outcome === 'q') deferred++
    else duplicates++
  }
  return { accepted, duplicates, deferred, rejected: prepared.rejected }
}

const responses = {
  200: IngestResponse,
  '4xx': ErrorResponse,
  '5xx': ErrorResponse,
}

const ingestRoutes: FastifyPluginAsync<IngestRoutesOptions> = async (app, options) => {
  const { writer, window } = options
  // A __proto__ or constructor.prototype key is refused by the per-event checks,
  // that event alone (contract section 4), where Fastify's parser would refuse
  // the whole request. JSON.parse makes such a key a plain own property, never
  // a prototype, and nothing here copies a body into another object.
  parseJsonBodiesStrictly(app, 'ignore')
  const prepareFor = {
    progress: prepareProgress,
    analytics: prepareAnalytics,
  } satisfies Record<Stream, (events: unknown[], principal: Principal, window: TimeWindow, sentAt?: string) => Prepared<unknown>>

  async function ingest(stream: Stream, events: unknown[], principal: Principal, sentAt: string | undefined): Promise<Response> {
    const prepared = prepareFor[stream](events, principal, window, sentAt)
    const outcomes = prepared.rows.length > 0 ? await writer.write(stream, prepared.rows as never) : ''
    return summarize(outcomes, prepared)
  }

  const routes: { stream: Stream; batch: string; single: string; eventName: string }[] = [
    { stream: 'progress', batch: '/api/client/progress/batch', single: '/api/client/progress/lesson', eventName: 'ProgressEvent' },
    { stream: 'analytics', batch: '/api/analytics/events/batch', single: '/api/analytics/events', eventName: 'AnalyticsEvent' },
  ]
  for (const { stream, batch, single, eventName } of routes) {
    app.post(
      batch,
      {
        config: { ingest: stream },
        schema: { tags: ['ingestion'], body: batchBody(options.maxBatchEvents, eventName), response: responses },
      },
      async (request) => {
        const body = request.body as BatchBody
        return ingest(stream, body.events, request.principal, body.sentAt)
      },
    )
    app.post(
      single,
      {
        config: { ingest: stream },
        schema: { tags: ['ingestion'], body: SingleEventBody, response: responses },
      },
      async (request) => ingest(stream, [request.body], request.principal, undefined),
    )
  }
}

export default ingestRoutes
