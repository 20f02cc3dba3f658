// One queue (progress or analytics): when to flush, what to send, what to
// delete. Invariants:
// - one request in flight per queue: sessions run one after another in a tab,
//   and under a Web Lock across tabs;
// - an event leaves storage only when the server accounted for it;
// - nothing is sent before the pacing gate (Retry-After, backoff, server lag),
//   which lives in IndexedDB so every tab and the next page load obey it.
import { bodyBytes, encodeBody, KEEPALIVE_BUDGET_BYTES, takeChunk, type Sized } from './chunking.ts'
import { withLock } from './lock.ts'
import { classify, type RejectedEvent } from './outcome.ts'
import {
  afterRequest, flushInterval, gateOf, idlePacing, nextFlushAt, onClockNow, parseLag, parseRetryAfter,
  type Observation, type Pacing, type PacingOptions,
} from './scheduler.ts'
import type { EventStore, StoredEvent } from './store.ts'
import type { TokenSource } from './token-source.ts'
import { keepaliveInFlight, postBatch, type Reply } from './transport.ts'
import type { QueueStats, Rejection, Stream } from './types.ts'

export interface QueueSettings {
  maxBatchEvents: number
  maxBatchBytes: number
  maxStoredEvents: number
  pacing: PacingOptions
  onRejected: ((stream: Stream, rejections: Rejection[]) => void) | undefined
}

export interface QueueContext {
  store: EventStore
  tokens: TokenSource
  url: string
  lockName: string
  settings: QueueSettings
}

/** setTimeout's longest delay; a longer one fires at once, which would make a busy loop. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

export class StreamQueue {
  readonly stream: Stream
  readonly ctx: QueueContext
  /** This tab's view of the stored pacing, refreshed by every peek and settle. */
  pacing: Pacing = idlePacing
  pending = 0
  inFlight = 0
  retries = 0
  dropped = 0
  rejected = 0
  /** Set by pagehide: no new request until pageshow brings the page back. */
  closing = false
  private closed = false
  private pendingBytes = 0
  /** Events this tab stored and has not seen acknowledged: what pagehide can send without IndexedDB. */
  private readonly local = new Map<number, StoredEvent>()
  private otherTabHolds = false
  /**
   * The most events per chunk, halved by each refusal that a smaller chunk may
   * pass or isolate (outcome.ts). Every chunk is cut to it, the rest of a
   * halved one too, so a server with smaller limits is not sent a too-large
   * chunk again; and a 429 or an outage in the middle of the halving resumes
   * from there instead of from a whole chunk. Back to unlimited once the
   * event at fault is dropped alone; it stays at the size that worked when a
   * whole chunk was simply too large (400 TOO_MANY_EVENTS, 413).
   */
  private chunkLimit = Infinity
  private timer: ReturnType<typeof setTimeout> | undefined
  private timerAt = Infinity
  /** Sessions chain on tail; at most one more waits behind the running one. */
  private tail: Promise<unknown> = Promise.resolve()
  private queued: Promise<void> | undefined
  private queuedForce = false
  private queuedWait = false

  constructor(stream: Stream, ctx: QueueContext) {
    this.stream = stream
    this.ctx = ctx
  }

  /** Newly stored events: flush at the gate when a batch is full, else after the interval. */
  added(events: readonly StoredEvent[]): void {
    for (const event of events) {
      this.local.set(event.seq, event)
      this.pendingBytes += event.bytes
    }
    // Bounded like the store; the oldest are still stored, just not sendable on pagehide.
    for (const seq of this.local.keys()) {
      if (this.local.size <= this.ctx.settings.maxStoredEvents) break
      this.local.delete(seq)
    }
    this.pending += events.length
    const { maxBatchEvents, maxBatchBytes, pacing } = this.ctx.settings
    const full = this.pending >= maxBatchEvents || this.pendingBytes >= maxBatchBytes
    this.schedule(full ? gateOf(this.pacing) : nextFlushAt(this.pacing, false, pacing))
  }

  /** The storage cap removed this queue's oldest events up to seq upTo. */
  evicted(count: number, upTo: number): void {
    this.dropped += count
    this.pending = Math.max(0, this.pending - count)
    for (const seq of this.local.keys()) {
      if (seq > upTo) break
      this.local.delete(seq)
    }
  }

  schedule(at: number): void {
    if (this.closed || this.closing || (this.timer !== undefined && this.timerAt <= at)) return
    this.clearTimer()
    this.timerAt = at
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.timerAt = Infinity
      void this.flush()
    }, Math.min(MAX_TIMEOUT_MS, Math.max(0, at - Date.now()))) // fired early, drain schedules again
  }

  /**
   * Runs a send session after the current one. force ignores the flush
   * interval (never the gate); wait queues for the lock when another tab holds it.
   */
  flush(force = false, wait = false): Promise<void> {
    if (this.queued) {
      this.queuedForce ||= force
      this.queuedWait ||= wait
      return this.queued
    }
    this.queuedForce = force
    this.queuedWait = wait
    const run = this.tail.then(() => {
      this.queued = undefined
      return this.session(this.queuedForce, this.queuedWait)
    })
    this.queued = run
    this.tail = run
    return run
  }

  private async session(force: boolean, wait: boolean): Promise<void> {
    if (this.closed || this.closing) return
    this.clearTimer()
    try {
      const ran = await withLock(this.ctx.lockName, wait, () => this.drain(force))
      this.otherTabHolds = !ran
      // The tab holding the lock sends our stored events too; look again later in case it stops.
      if (!ran) this.schedule(Date.now() + flushInterval(this.pacing.ewmaMs, this.ctx.settings.pacing))
    } catch {
      // IndexedDB failed (quota, version change, private mode): nothing was deleted; try later.
      this.schedule(Date.now() + this.ctx.settings.pacing.maxIntervalMs)
    }
  }

  /** Sends chunks while they are due; stops at the first failure or gate. */
  private async drain(force: boolean): Promise<void> {
    const { maxBatchEvents, maxBatchBytes, pacing: options } = this.ctx.settings
    while (!this.closed && !this.closing) {
      const { records, pacing: stored, counts } = await this.ctx.store.peek(this.stream, maxBatchEvents)
      const pacing = onClockNow(stored, Date.now())
      this.pacing = pacing
      this.pending = counts[this.stream]
      this.forgetBefore(records[0]?.seq ?? Infinity)
      this.pendingBytes = bodyBytes(records)
      if (records.length === 0) return
      const chunk = takeChunk(records, Math.min(maxBatchEvents, this.chunkLimit), maxBatchBytes)
      const full = chunk.length < records.length || records.length >= maxBatchEvents
      const due = force ? gateOf(pacing) : nextFlushAt(pacing, full, options)
      if (Date.now() < due) return this.schedule(due)
      if (!(await this.send(chunk, counts.progress + counts.analytics))) return this.schedule(gateOf(this.pacing))
    }
  }

  /** Sends one chunk. True when the queue may go on: its events were settled, or it is to be halved. */
  private async send(chunk: StoredEvent[], depth: number): Promise<boolean> {
    let reply: Reply | undefined
    try {
      let token = await this.ctx.tokens.get()
      reply = await this.post(chunk, token, depth)
      if (reply?.status === 401) {
        // Expired or revoked: ask getToken once more, then back off.
        this.ctx.tokens.invalidate(token)
        token = await this.ctx.tokens.get()
        reply = await this.post(chunk, token, depth)
      }
    } catch {
      this.retries++
      await this.settle([], { kind: 'failed' })
      return false
    }
    if (!reply) return false // the page is going away; the events stay stored
    const seen = { latencyMs: reply.latencyMs, lagMs: parseLag(reply.lag) }
    const verdict = classify(reply.status, reply.body, chunk.length)
    switch (verdict.action) {
      case 'ack':
        this.reject(verdict.rejected.map(({ eventId, code, message }: RejectedEvent) => ({ ...(eventId ? { eventId } : {}), code, message })))
        await this.settle(chunk.map((record) => record.seq), { kind: 'answered', ...seen })
        return true
      case 'drop': {
        // Refused for this event alone: it can never be sent.
        const { eventId } = JSON.parse(chunk[0]!.json) as { eventId?: string }
        this.reject([{ ...(eventId ? { eventId } : {}), code: verdict.code, message: verdict.message }])
        await this.settle([chunk[0]!.seq], { kind: 'answered', ...seen })
        this.chunkLimit = Infinity
        return true
      }
      case 'split':
        // Nothing deleted; drain sends the first half once the gate opens (a flush interval).
        this.chunkLimit = Math.ceil(chunk.length / 2)
        await this.settle([], { kind: 'answered', ...seen, halved: true })
        return true
      case 'throttled':
        this.retries++
        await this.settle([], { kind: 'throttled', ...seen, retryAfterMs: parseRetryAfter(reply.retryAfter, Date.now()) })
        return false
      case 'failed':
        this.retries++
        await this.settle([], { kind: 'failed', ...seen })
        return false
    }
  }

  /** Undefined when the page is going away (pagehide): the events then stay stored. */
  private async post(chunk: StoredEvent[], token: string, depth: number): Promise<Reply | undefined> {
    // Checked right before fetch, in the same task, so pagehide's own send never overlaps this one.
    if (this.closing || this.closed) return undefined
    this.inFlight += chunk.length
    try {
      return await postBatch(this.ctx.url, token, encodeBody(chunk, new Date().toISOString()), bodyBytes(chunk), depth)
    } finally {
      this.inFlight -= chunk.length
    }
  }

  private async settle(seqs: number[], observation: Observation): Promise<void> {
    const now = Date.now()
    const failed = observation.kind !== 'answered'
    this.pacing = await this.ctx.store.settle(
      this.stream,
      seqs,
      (stored) => afterRequest(stored, observation, now, Math.random(), this.ctx.settings.pacing),
      failed,
    )
    for (const seq of seqs) this.local.delete(seq)
    this.pending = Math.max(0, this.pending - seqs.length)
  }

  private reject(rejections: Rejection[]): void {
    if (rejections.length === 0) return
    this.rejected += rejections.length
    try {
      this.ctx.settings.onRejected?.(this.stream, rejections)
    } catch {
      // A throwing callback must not stop delivery.
    }
  }

  /**
   * pagehide: the page may be gone before IndexedDB answers, so send this
   * tab's unacknowledged events from memory with keepalive, within the
   * budget. They stay stored: if the page dies they go again on the next load
   * and the server counts them as duplicates. Skipped while this queue has a
   * request in flight (usually keepalive, so it outlives the page; a body over
   * the keepalive budget is not, and its events wait for the next page load),
   * while the gate is closed, or when another tab holds the queue (it will
   * send them).
   */
  beacon(): void {
    this.closing = true
    this.clearTimer()
    if (this.inFlight === 0 && !this.otherTabHolds) this.sendOnExit([...this.local.values()])
  }

  /**
   * Called with every batch tracked (both queues'); sends this queue's once
   * beacon() has run, when the page's own pagehide or visibilitychange
   * handlers (which run after ours) track them. No request holds them, here
   * or in another tab, and they may never reach IndexedDB, so they go now
   * too, beside whatever is in flight. They are being stored as well, so a
   * lost send goes on the next load if that write made it.
   */
  late(events: readonly (Sized & { stream: Stream })[]): void {
    if (this.closing) this.sendOnExit(events.filter((event) => event.stream === this.stream))
  }

  /** One keepalive request within what is left of the budget; settled normally if the page lives on. */
  private sendOnExit(events: readonly (Sized & { seq?: number })[]): void {
    const token = this.ctx.tokens.current
    if (this.closed || token === undefined || Date.now() < gateOf(this.pacing)) return
    const budget = Math.min(this.ctx.settings.maxBatchBytes, KEEPALIVE_BUDGET_BYTES - keepaliveInFlight())
    const chunk = takeChunk(events, this.ctx.settings.maxBatchEvents, budget)
    const bytes = bodyBytes(chunk)
    if (chunk.length === 0 || bytes > budget) return
    this.inFlight += chunk.length
    const sent = postBatch(this.ctx.url, token, encodeBody(chunk, new Date().toISOString()), bytes, this.pending)
      .then(async (reply) => {
        // Still alive (back from the bfcache, or the tab is slow to close): settle normally.
        // Late events have no seq yet: they stay stored and go again, as duplicates.
        const verdict = classify(reply.status, reply.body, chunk.length)
        const seqs = chunk.flatMap((event) => event.seq ?? [])
        if (verdict.action === 'ack') await this.settle(seqs, { kind: 'answered', latencyMs: reply.latencyMs, lagMs: parseLag(reply.lag) })
      })
      .catch(() => {})
      .finally(() => (this.inFlight -= chunk.length))
    this.tail = Promise.all([this.tail, sent])
  }

  /** pageshow from the bfcache: carry on. */
  resume(): void {
    this.closing = false
    void this.flush()
  }

  stats(pending: number): QueueStats {
    return {
      pending,
      inFlight: this.inFlight,
      lastLatencyMs: this.pacing.lastLatencyMs === null ? null : Math.round(this.pacing.lastLatencyMs),
      lagMs: this.pacing.lagMs,
      nextFlushInMs: this.timer === undefined ? null : Math.max(0, Math.round(this.timerAt - Date.now())),
      retries: this.retries,
      dropped: this.dropped,
      rejected: this.rejected,
    }
  }

  /** No more sessions; resolves when the running one (and its request) is done. */
  async stop(): Promise<void> {
    this.closed = true
    this.clearTimer()
    await this.tail
  }

  private forgetBefore(seq: number): void {
    for (const known of this.local.keys()) {
      if (known >= seq) break
      this.local.delete(known)
    }
  }

  private clearTimer(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
  }
}
