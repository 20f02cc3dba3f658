// Bearer-token authentication for every route that does not declare
// `config: { public: true }`. Runs at onRequest, before the body is read.
import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { KeysUnavailableError } from '../../auth/jwks.ts'
import { createVerifier, TokenError, type VerifierOptions } from '../../auth/tokens.ts'
import type { Principal } from '../../auth/principal.ts'
import { Errors } from '../../errors.ts'
import { RETRY_AFTER_SECONDS } from '../error-handler.ts'

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal
  }
  interface FastifyContextConfig {
    public?: boolean
  }
}

/** While the identity provider fails, one warning per this period: a line per refused request would flood the log. */
const KEYS_WARNING_INTERVAL_MS = 60000

export default fp<VerifierOptions>(
  async (app, options) => {
    const verify = createVerifier(options)
    const warnKeysUnavailable = rateLimitedWarning()
    app.decorateRequest('principal', null as unknown as Principal)
    app.addHook('onRequest', async (request) => {
      if (request.is404 || request.routeOptions.config.public) return
      const header = request.headers.authorization
      if (!header) throw new Errors.UNAUTHORIZED('missing Authorization header')
      const [scheme, token] = header.split(' ')
      if (scheme?.toLowerCase() !== 'bearer' || !token) throw new Errors.UNAUTHORIZED('Authorization must be "Bearer <token>"')
      try {
        request.principal = await verify(token)
      } catch (error) {
        if (error instanceof TokenError) throw new Errors.UNAUTHORIZED(error.message)
        if (error instanceof KeysUnavailableError) {
          warnKeysUnavailable(request.log, error)
          throw new Errors.IDENTITY_PROVIDER_UNAVAILABLE(String(RETRY_AFTER_SECONDS))
        }
        throw error
      }
    })
  },
  { name: 'auth' },
)

/** Warns at the first failure, then at most once per interval, with how many requests were refused meanwhile. */
function rateLimitedWarning() {
  let lastAt = -Infinity
  let refused = 0
  return (log: FastifyBaseLogger, error: KeysUnavailableError) => {
    refused++
    const now = Date.now()
    if (now - lastAt < KEYS_WARNING_INTERVAL_MS) return
    log.warn({ err: error.cause, refusedSinceLastWarning: refused }, `${error.message}: answering 503`)
    lastAt = now
    refused = 0
  }
}
