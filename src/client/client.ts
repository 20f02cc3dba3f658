// createIngestClient: builds events, writes them ahead to IndexedDB, and
// wires the two queues to the page's lifecycle.
import { utf8Length, bodyBytes } from './chunking.ts'
import { StreamQueue, type QueueSettings } from './queue.ts'
import { defaultPacingOptions } from './scheduler.ts'
import { EventStore, type NewEvent } from './store.ts'
import { TokenSource } from './token-source.ts'
import type { AnalyticsContext, IngestClient, IngestClientOptions, IngestStats, ProgressInput, Properties, Stream } from './types.ts'

const ROUTES: Record<Stream, string> = {
  progress: '/api/client/progress/batch',
  analytics: '/api/analytics/events/batch',
}
const PROGRESS_TYPES = ['lesson_started', 'lesson_progress', 'lesson_completed']
const NAME = /^[a-z0-9_.:-]{1,64}$/
const isId = (value: unknown): boolean => typeof value === 'string' && value.length > 0 && value.length <= 128

// crypto.randomUUID needs a secure context; getRandomValues does not.
const uuid = (): string =>
  crypto.randomUUID?.() ??
  '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) =>
    (Number(c) ^ (crypto.getRandomValues(new Uint8Array(1))[0]! & (15 >> (Number(c) / 4)))).toString(16),
  )

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`createIngestClient: ${name} must be a positive number`)
  return value
}

interface Waiting extends NewEvent {
  resolve: () => void
  reject: (error: unknown) => void
}

export function createIngestClient(options: IngestClientOptions): IngestClient {
  if (typeof options?.endpoint !== 'string' || typeof options.getToken !== 'function') {
    throw new TypeError('createIngestClient: endpoint (string) and getToken (function) are required')
  }
  // Added to every analytics event: a bad one would have the server reject them all.
  if (options.sessionId !== undefined && !isId(options.sessionId)) throw new TypeError('createIngestClient: sessionId must be 1-128 characters')
  const settings: QueueSettings = {
    maxBatchEvents: positive(options.maxBatchEvents, 100, 'maxBatchEvents'),
    maxBatchBytes: positive(options.maxBatchBytes, 262144, 'maxBatchBytes'),
    maxStoredEvents: positive(options.maxStoredEvents, 10000, 'maxStoredEvents'),
    pacing: {
      minIntervalMs: positive(options.minIntervalMs, defaultPacingOptions.minIntervalMs, 'minIntervalMs'),
      maxIntervalMs: positive(options.maxIntervalMs, defaultPacingOptions.maxIntervalMs, 'maxIntervalMs'),
      baseBackoffMs: positive(options.baseBackoffMs, defaultPacingOptions.baseBackoffMs, 'baseBackoffMs'),
      maxBackoffMs: positive(options.maxBackoffMs, defaultPacingOptions.maxBackoffMs, 'maxBackoffMs'),
    },
    onRejected: options.onRejected,
  }
  const name = options.storageName ?? 'ingest-client'
  const base = options.endpoint.replace(/\/+$/, '')
  const tokens = new TokenSource(options.getToken)
  let closed = false

  const ready = EventStore.open(name, options.durability ?? 'strict').then((store) => {
    const queues = {} as Record<Stream, StreamQueue>
    for (const stream of ['progress', 'analytics'] as const) {
      queues[stream] = new StreamQueue(stream, { store, tokens, url: base + ROUTES[stream], lockName: `${name}:${stream}`, settings })
      // Whatever an earlier page (crashed, closed, reloaded) left behind goes now.
      void queues[stream].flush()
    }
    return { store, queues }
  })
  // Surfaced by every call (StorageUnavailableError); an unhandled rejection here would only be noise.
  ready.catch(() => {})
  // After shutdown() the store is closed: every call says so alike, not with IndexedDB's own error.
  const shutDown = () => new Error('ingest client is shut down')
  const open = async () => {
    const handles = await ready
    if (closed) throw shutDown()
    return handles
  }
  const all = async (action: (queue: StreamQueue) => unknown) => {
    const { queues } = await open()
    return Promise.all([action(queues.progress), action(queues.analytics)])
  }

  // Page lifecycle: hidden is the last moment a mobile page reliably runs, so
  // flush then. pagehide must act synchronously (the page may be gone before
  // any promise settles), so the handlers use the queues once they exist.
  let opened: StreamQueue[] = []
  ready.then(({ queues }) => (opened = [queues.progress, queues.analytics]), () => {})
  const onVisibility = () => {
    if (document.visibilityState === 'hidden') for (const queue of opened) void queue.flush(true)
  }
  const onPageHide = () => {
    for (const queue of opened) queue.beacon()
  }
  const onPageShow = (event: PageTransitionEvent) => {
    if (event.persisted) for (const queue of opened) queue.resume()
  }
  const inPage = typeof document !== 'undefined'
  if (inPage) {
    document.addEventListener('visibilitychange', onVisibility)
    addEventListener('pagehide', onPageHide)
    addEventListener('pageshow', onPageShow)
  }

  // Every track() of one task shares one IndexedDB transaction.
  let waiting: Waiting[] = []
  const writes = new Set<Promise<void>>()
  async function write(batch: Waiting[]): Promise<void> {
    try {
      const { store, queues } = await ready
      // After pagehide (both queues are closing then) the write must not wait for a callback.
      const result = await store.append(batch, settings.maxStoredEvents, queues.progress.closing)
      for (const stream of ['progress', 'analytics'] as const) {
        const added = batch.flatMap((event, i) => (event.stream === stream ? [{ seq: result.seqs[i]!, json: event.json, bytes: event.bytes }] : []))
        if (result.evicted[stream] > 0) queues[stream].evicted(result.evicted[stream], result.evictedUpTo[stream])
        const kept = added.filter((event) => event.seq > result.evictedUpTo[stream])
        if (kept.length > 0) queues[stream].added(kept)
      }
      for (const event of batch) event.resolve()
      // pagehide needs a token synchronously: have one before it is needed.
      tokens.get().catch(() => {})
    } catch (error) {
      for (const event of batch) event.reject(error)
    }
  }

  function dispatch(): void {
    if (waiting.length === 0) return
    // Tracked after pagehide (the page's own handlers run after ours): the
    // page may be gone before IndexedDB answers, so these go from memory too.
    for (const queue of opened) queue.late(waiting)
    const done = write(waiting)
    waiting = []
    writes.add(done)
    void done.finally(() => writes.delete(done))
  }

  function enqueue(stream: Stream, event: { eventId: string; [field: string]: unknown }): Promise<string> {
    if (closed) return Promise.reject(shutDown())
    let json: string
    try {
      json = JSON.stringify(event)
    } catch (error) {
      return Promise.reject(error) // cyclic or BigInt properties
    }
    const bytes = utf8Length(json)
    if (bodyBytes([{ json, bytes }]) > settings.maxBatchBytes) {
      return Promise.reject(new RangeError(`event is larger than maxBatchBytes (${settings.maxBatchBytes})`))
    }
    return new Promise((resolve, reject) => {
      if (waiting.length === 0) queueMicrotask(dispatch)
      waiting.push({ stream, json, bytes, resolve: () => resolve(event.eventId), reject })
    })
  }

  async function stats(): Promise<IngestStats> {
    const { store, queues } = await open()
    const counts = await store.counts()
    return { progress: queues.progress.stats(counts.progress), analytics: queues.analytics.stats(counts.analytics) }
  }

  return {
    trackProgress(input: ProgressInput) {
      if (!input || !isId(input.courseId) || !isId(input.lessonId) || !PROGRESS_TYPES.includes(input.type)) {
        return Promise.reject(new TypeError('trackProgress: courseId and lessonId (1-128 chars) and a valid type are required'))
      }
      if (input.type === 'lesson_progress' && typeof input.progress !== 'number') {
        return Promise.reject(new TypeError('trackProgress: progress is required for lesson_progress'))
      }
      // Listed field by field: unknown fields would make the server reject the event.
      return enqueue('progress', {
        eventId: uuid(),
        userId: input.userId,
        courseId: input.courseId,
        lessonId: input.lessonId,
        type: input.type,
        progress: input.progress,
        timeSpentMs: input.timeSpentMs,
        score: input.score,
        occurredAt: new Date().toISOString(),
      })
    },

    track(eventName: string, properties?: Properties, context: AnalyticsContext = {}) {
      // A null context must reject like any bad input, not throw reading it.
      if (typeof eventName !== 'string' || !NAME.test(eventName) || typeof context !== 'object' || !context) {
        return Promise.reject(new TypeError('track: name must match [a-z0-9_.:-]{1,64}, and context be an object'))
      }
      return enqueue('analytics', {
        eventId: uuid(),
        userId: context.userId,
        name: eventName,
        occurredAt: new Date().toISOString(),
        courseId: context.courseId,
        lessonId: context.lessonId,
        sessionId: context.sessionId ?? options.sessionId,
        properties,
      })
    },

    async flush() {
      dispatch()
      await Promise.all(writes)
      await all((queue) => queue.flush(true, true))
      return stats()
    },

    getQueueStats: stats,

    async shutdown() {
      if (closed) return
      closed = true
      if (inPage) {
        document.removeEventListener('visibilitychange', onVisibility)
        removeEventListener('pagehide', onPageHide)
        removeEventListener('pageshow', onPageShow)
      }
      dispatch()
      await Promise.all(writes)
      try {
        const { store, queues } = await ready
        await Promise.all([queues.progress.stop(), queues.analytics.stop()])
        store.close()
      } catch {
        // The store never opened: nothing to close.
      }
    },
  }
}
