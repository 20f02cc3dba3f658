// CORS for browser clients (the SDK posts from course pages on other origins).
// Registered before auth and shedding so that 401, 429 and 503 answers carry
// the CORS headers too: otherwise the browser hides their status and
// Retry-After from the SDK, which then cannot back off properly.
import cors from '@fastify/cors'
import fp from 'fastify-plugin'

export interface CorsPluginOptions {
  /** Allowed origins, `*` for any; empty turns CORS off (no headers at all). */
  origins: string[]
  /** Seconds browsers may cache a preflight answer. */
  maxAge?: number
}

/** CORS_ORIGINS: comma-separated origins, `*` allowed, blanks ignored. */
export function parseOrigins(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((origin) => origin.trim().replace(/\/+$/, ''))
    .filter((origin) => origin.length > 0)
}

export const EXPOSED_HEADERS = [
  'X-Client-Queue-Lag', 'Retry-After', 'X-Request-Id',
  'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset',
]
export const ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'X-Client-Queue-Depth', 'X-Request-Id']

export default fp<CorsPluginOptions>(
  async (app, options) => {
    if (options.origins.length === 0) return
    const any = options.origins.includes('*')
    const allowed = new Set(options.origins)

    // Preflights carry no token by design: the OPTIONS route @fastify/cors adds
    // is public. A preflight from a disallowed origin falls through to the
    // not-found handler: 405 on a path the API has, 404 elsewhere.
    app.addHook('onRoute', (route) => {
      if (route.method === 'OPTIONS') route.config = { ...route.config, public: true }
    })

    await app.register(cors, {
      // A function (not the list) so that a disallowed origin gets no CORS
      // header at all: with a list, @fastify/cors still sends the expose and
      // preflight headers.
      origin: (origin, callback) => {
        if (!origin) return callback(null, false)
        callback(null, any ? '*' : allowed.has(origin))
      },
      methods: ['GET', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: ALLOWED_HEADERS,
      exposedHeaders: EXPOSED_HEADERS,
      maxAge: options.maxAge ?? 600,
      // Lenient: the strict mode answers a plain-text 400 outside our error catalogue.
      strictPreflight: false,
    })
  },
  { name: 'cors' },
)
