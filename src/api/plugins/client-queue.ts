// X-Client-Queue-Depth: clients report how many events they still hold. The
// latest report per user within the last 5 minutes is kept (bounded memory),
// and their sum is /api/health offlineQueue.backlog: how much data is waiting
// on devices, for example after an outage.
import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import { Errors } from '../../errors.ts'

export interface BacklogOptions {
  /** Reports older than this no longer count. */
  windowMs?: number
  /** At most this many users are tracked; the least recently reporting go first. */
  maxUsers?: number
  /** Monotonic clock in milliseconds; tests inject one. */
  now?: () => number
}

/** Latest queue depth per user over a sliding window, summed incrementally. */
export class OfflineBacklog {
  readonly windowMs: number
  readonly maxUsers: number
  readonly #now: () => number
  // Map iteration follows insertion order, and every report re-inserts its
  // user, so the first entries are always the oldest: pruning stops at the
  // first fresh one.
  readonly #latest = new Map<string, { depth: number; at: number }>()
  #sum = 0

  constructor(options: BacklogOptions = {}) {
    this.windowMs = options.windowMs ?? 5 * 60000
    this.maxUsers = options.maxUsers ?? 100000
    this.#now = options.now ?? (() => performance.now())
  }

  report(userId: string, depth: number): void {
    const now = this.#now()
    this.#prune(now)
    this.#forget(userId)
    // A zero needs no entry: it contributes nothing to the sum.
    if (depth <= 0) return
    this.#latest.set(userId, { depth, at: now })
    this.#sum += depth
    if (this.#latest.size > this.maxUsers) this.#forget(this.#latest.keys().next().value!)
  }

  /** Sum of the latest depth of every user who reported within the window. */
  total(): number {
    this.#prune(this.#now())
    return this.#sum
  }

  get users(): number {
    this.#prune(this.#now())
    return this.#latest.size
  }

  #forget(userId: string): void {
    const entry = this.#latest.get(userId)
    if (!entry) return
    this.#sum -= entry.depth
    this.#latest.delete(userId)
  }

  #prune(now: number): void {
    for (const [userId, entry] of this.#latest) {
      if (now - entry.at < this.windowMs) break
      this.#forget(userId)
    }
  }
}

/** A non-negative integer below a billion; anything else is a client bug worth a 400. */
const DEPTH = /^\d{1,9}$/

export default fp<BacklogOptions>(
  async (app, options) => {
    const backlog = new OfflineBacklog(options)
    app.decorate('offlineBacklog', () => backlog.total())

    const registers = [app.metrics.registry]
    new Gauge({
      name: 'client_offline_backlog_events',
      help: 'Events clients report still holding (latest report per user, last 5 minutes)',
      registers,
      collect() {
        this.set(backlog.total())
      },
    })
    new Gauge({
      name: 'client_offline_backlog_users',
      help: 'Users with a non-zero queue-depth report in the last 5 minutes',
      registers,
      collect() {
        this.set(backlog.users)
      },
    })

    // After auth (registered later than it), so the report is keyed on the token's user.
    app.addHook('onRequest', async (request) => {
      const header = request.headers['x-client-queue-depth']
      if (header === undefined || !request.routeOptions.config.ingest || !request.principal) return
      if (typeof header !== 'string' || !DEPTH.test(header.trim())) {
        throw new Errors.INVALID_HEADER('X-Client-Queue-Depth must be a non-negative integer')
      }
      backlog.report(request.principal.userId, Number(header))
    })
  },
  { name: 'client-queue', dependencies: ['metrics', 'auth'] },
)
