// Requests Node's HTTP parser refuses before any route sees them: headers too
// large, bytes that are not HTTP, a request too slow to arrive. Fastify's own
// answer to these has no `code`; ours is the catalogue's body, like every other
// refusal, with the headers every answer carries (no request hook runs here,
// so there is no CORS: the request's headers were never read).
import { randomUUID } from 'node:crypto'
import { STATUS_CODES, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { Errors } from '../errors.ts'
import { errorBody } from './error-handler.ts'

function refusal(code: string | undefined) {
  if (code === 'HPE_HEADER_OVERFLOW') return new Errors.HEADERS_TOO_LARGE()
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return new Errors.REQUEST_TIMEOUT()
  return new Errors.MALFORMED_REQUEST()
}

/** The answer still owed on this connection to an earlier, pipelined request (Node's own field). */
function pendingResponse(socket: Socket): ServerResponse | undefined {
  const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
  return pending && !pending.writableFinished ? pending : undefined
}

/** Fastify's clientErrorHandler: `this` is the app. */
export function answerClientError(this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  // Earlier requests on the connection are answered first, in order: a refusal
  // sent now would be read as their answer, and a batch written would seem refused.
  const earlier = pendingResponse(socket)
  if (earlier) {
    earlier.once('close', () => answerClientError.call(this, error, socket))
    return
  }
  const refused = refusal(error.code)
  this.log.debug({ err: error, code: refused.code }, 'request refused by the HTTP parser')
  if (socket.writable) {
    const body = JSON.stringify(errorBody(refused.statusCode, refused.code, refused.message))
    socket.write(
      `HTTP/1.1 ${refused.statusCode} ${STATUS_CODES[refused.statusCode]}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${randomUUID()}\r\n` +
        `X-Client-Queue-Lag: ${this.lag.lagMs()}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    )
  }
  socket.destroy(error)
}
