// The SDK's public types. Event shapes mirror contract section 4; the SDK
// assigns eventId and occurredAt itself, so callers never pass them.

export type Stream = 'progress' | 'analytics'

interface ProgressFields {
  courseId: string
  lessonId: string
  timeSpentMs?: number
  score?: number
  /** Only for service tokens; learners' events belong to the token's user. */
  userId?: string
}

/**
 * progress is 0-100, required for lesson_progress: a union on type, so that
 * leaving it out there does not compile (the SDK would reject the event).
 */
export type ProgressInput =
  | (ProgressFields & { type: 'lesson_started' | 'lesson_completed'; progress?: number })
  | (ProgressFields & { type: 'lesson_progress'; progress: number })

/**
 * An analytics event's properties: any plain object, interfaces included
 * (Record<string, unknown> refuses an interface, which has no index signature).
 */
export type Properties = object

export interface AnalyticsContext {
  courseId?: string
  lessonId?: string
  /** Defaults to the client's sessionId option. */
  sessionId?: string
  userId?: string
}

export interface Rejection {
  eventId?: string
  /** invalid_event, too_old, in_future; or FOREIGN_USER (another user) or PAYLOAD_TOO_LARGE when the API refused a lone event for itself. */
  code: string
  message: string
}

export interface IngestClientOptions {
  /** Base URL of the ingestion API, e.g. "https://ingest.example.com" (no trailing path needed). */
  endpoint: string
  /**
   * Returns a bearer token. Cached; asked again once after a 401. No token
   * (null, undefined, "") fails each send attempt, counted in retries, and is
   * asked for again at the next: the events stay stored until it gives one.
   */
  getToken: () => string | Promise<string>
  /** Events per request; keep within the server's MAX_BATCH_EVENTS. Default 100. */
  maxBatchEvents?: number
  /** Request body bytes; keep within the server's MAX_BATCH_BYTES. Default 262144. */
  maxBatchBytes?: number
  /** Bounds of the adaptive flush interval. Defaults 1000 and 8000. */
  minIntervalMs?: number
  maxIntervalMs?: number
  /** Exponential backoff after network errors: first delay and cap. Defaults 1000 and 30000. */
  baseBackoffMs?: number
  maxBackoffMs?: number
  /** Events kept on the device across both queues; past it analytics go first. Default 10000. */
  maxStoredEvents?: number
  /** IndexedDB database and Web Lock name; one per app (or per signed-in user). Default "ingest-client". */
  storageName?: string
  /** "strict" (default) survives power loss; "relaxed" only a crash of the browser. */
  durability?: 'strict' | 'relaxed'
  /** Added to analytics events that do not name one; 1-128 characters (createIngestClient throws a TypeError otherwise). */
  sessionId?: string
  /** Called with events the server refused for good; they are dropped. */
  onRejected?: (stream: Stream, rejections: Rejection[]) => void
}

export interface QueueStats {
  /** Events stored for this queue (by every tab of the origin). */
  pending: number
  /** Events in the request this tab has in flight (in the requests, while the page closes). */
  inFlight: number
  lastLatencyMs: number | null
  /** The server's latest X-Client-Queue-Lag. */
  lagMs: number
  /** Milliseconds until this tab's next scheduled flush; null when none is scheduled. */
  nextFlushInMs: number | null
  /** Failed attempts that will be retried (network, 429, 503, other). */
  retries: number
  /** Events evicted by the storage cap. */
  dropped: number
  /** Events the server refused for good. */
  rejected: number
}

export type IngestStats = Record<Stream, QueueStats>

/**
 * Every method but shutdown rejects with an error named StorageUnavailableError
 * when IndexedDB is missing or refuses to open, and with "ingest client is shut
 * down" after shutdown().
 */
export interface IngestClient {
  /** Resolves with the eventId once the event is durable in IndexedDB. */
  trackProgress(event: ProgressInput): Promise<string>
  /** Resolves with the eventId once the event is durable in IndexedDB. */
  track(name: string, properties?: Properties, context?: AnalyticsContext): Promise<string>
  /**
   * Sends what is due now, without waiting for the flush interval; never before
   * Retry-After, backoff or server lag. Resolves with the stats once done: their
   * pending is what is still stored.
   */
  flush(): Promise<IngestStats>
  getQueueStats(): Promise<IngestStats>
  /** Stops timers and listeners and waits for the request in flight; stored events stay for the next load. */
  shutdown(): Promise<void>
}
