// Bearer-token authentication for every route that does not declare
// `config: { public: true }`. Runs at onRequest, before the body is read.
import fp from 'fastify-plugin'
import { KeysUnavailableError } from '../../auth/jwks.ts'
import { createVerifier, TokenError, type VerifierOptions } from '../../auth/tokens.ts'
import type { Principal } from '../../auth/principal.ts'
import { Errors } from '../../errors.ts'
import { throttled } from '../../throttled.ts'
import { RETRY_AFTER_SECONDS } from '../error-handler.ts'

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal
  }
  interface FastifyContextConfig {
    public?: boolean
  }
}

export default fp<VerifierOptions>(
  async (app, options) => {
    const verify = createVerifier(options)
    // While the identity provider fails, a line per refused request would flood the log.
    const warnKeysUnavailable = throttled((error: KeysUnavailableError, refused: number) =>
      app.log.warn({ err: error.cause, refusedSinceLastWarning: refused }, `${error.message}: answering 503`),
    )
    app.decorateRequest('principal', null as unknown as Principal)
    app.addHook('onRequest', async (request) => {
      if (request.is404 || request.routeOptions.config.public) return
      const header = request.headers.authorization
      if (!header) throw new Errors.UNAUTHORIZED('missing Authorization header')
      const [scheme, token, ...rest] = header.split(' ')
      if (scheme?.toLowerCase() !== 'bearer' || !token || rest.length > 0) throw new Errors.UNAUTHORIZED('Authorization must be "Bearer <token>"')
      try {
        request.principal = await verify(token)
      } catch (error) {
        if (error instanceof TokenError) throw new Errors.UNAUTHORIZED(error.message)
        if (error instanceof KeysUnavailableError) {
          warnKeysUnavailable(error)
          throw new Errors.IDENTITY_PROVIDER_UNAVAILABLE(String(RETRY_AFTER_SECONDS))
        }
        throw error
      }
    })
  },
  { name: 'auth' },
)
