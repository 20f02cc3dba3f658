// JSON bodies as RFC 8259 has them: UTF-8. Fastify's own parser decodes with
// replacement, so an invalid byte (or a body in latin1 labelled so) was stored
// as U+FFFD: data altered without a word. Here a declared charset other than
// UTF-8 is a 415, and bytes that are not UTF-8 a 400, before anything is parsed.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Errors } from '../errors.ts'

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Replaces the scope's application/json parser (`poisoning`: what a __proto__ or constructor key does). */
export function parseJsonBodiesStrictly(app: FastifyInstance, poisoning: 'error' | 'ignore'): void {
  const parseText = app.getDefaultJsonParser(poisoning, poisoning)
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request: FastifyRequest, body: Buffer, done) => {
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1]
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      return done(new Errors.UNSUPPORTED_MEDIA_TYPE(`charset ${charset.slice(0, 40)}`), undefined)
    }
    let text: string
    try {
      text = utf8.decode(body)
    } catch {
      return done(new Errors.INVALID_JSON('the body is not UTF-8'), undefined)
    }
    parseText(request, text, done)
  })
}
