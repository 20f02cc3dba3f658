// Closing without dropping anyone. Fastify's close stops listening and waits
// for the requests in flight; this module looks after the keep-alive sockets
// around them, so that no client meets a reset it would read as a network
// failure, and a request that arrives too late is told to come back.
import type { FastifyInstance } from 'fastify'
import { Errors } from '../errors.ts'
import { RETRY_AFTER_SECONDS } from './error-handler.ts'

// Ingestion and reads have deadlines of their own, admin writes (a course
// waiting on a lock) none: past this a shutdown stops waiting for them, so the
// process ends within fly.toml's 45 s kill_timeout, its pool closed cleanly.
export const CLOSE_DEADLINE_MS = 30_000

// How long idle keep-alive sockets stay open once closing begins: a request
// a client was already sending on one is answered rather than reset.
const IDLE_GRACE_MS = 1000

export function closeGracefully(app: FastifyInstance): void {
  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    const server = app.server
    // A socket whose request is in flight is not idle when closing begins,
    // and Node would keep it open for keepAliveTimeout (75 s) after the
    // answer: SIGTERM waited that long. Now it ends once nothing else came.
    server.keepAliveTimeout = 1
    // Node's close() ends idle sockets at once, racing clients reusing them.
    const closeIdle = server.closeIdleConnections.bind(server)
    server.closeIdleConnections = () => {}
    setTimeout(closeIdle, IDLE_GRACE_MS).unref()
    done()
  })
  // New requests on a socket still open (a new connection is refused): a
  // coded 503 with Retry-After, as any other refusal; public routes (health)
  // answer, as under load shedding. Callback hooks: every request runs them,
  // and an async hook costs 2-3 µs.
  app.addHook('onRequest', (request, _reply, done) => {
    if (closing && !request.routeOptions.config.public) done(new Errors.OVERLOADED(String(RETRY_AFTER_SECONDS)))
    else done()
  })
  // Every answer while closing says the socket ends with it.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
}

/** Closes a listening app, cutting the requests still in flight after `deadlineMs`. */
export async function closeWithin(app: FastifyInstance, deadlineMs: number): Promise<void> {
  app.log.info('stopping: draining requests in flight')
  const deadline = setTimeout(() => {
    app.log.warn(`stopping: requests still in flight after ${deadlineMs} ms are cut off (their clients see the connection close, and may retry)`)
    app.server.closeAllConnections()
  }, deadlineMs)
  try {
    await app.close()
  } finally {
    clearTimeout(deadline)
  }
}
