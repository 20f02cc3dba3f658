// Closing without dropping anyone. Fastify's close stops listening and waits
// for the requests in flight; this module looks after the keep-alive sockets
// around them, so that no client meets a reset it would read as a network
// failure, and a request that arrives too late is told to come back.
import type { FastifyInstance } from 'fastify'
import { Errors } from '../errors.ts'
import { RETRY_AFTER_SECONDS } from './error-handler.ts'

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
