// The methods each route path answers, so that a path the API has, asked with
// a method it does not take, is a 405 with an Allow header (RFC 9110, 15.5.6)
// rather than a 404 that suggests a mistyped URL.
import type { FastifyInstance } from 'fastify'

export type AllowedMethods = (path: string) => string[]

/** Records every route added to `app` from now on; the function lists the methods registered for a path. */
export function trackRouteMethods(app: FastifyInstance): AllowedMethods {
  const routes: { pattern: RegExp; methods: string[] }[] = []
  app.addHook('onRoute', (route) => {
    // CORS answers preflights on every path (`OPTIONS *`): that says nothing about which paths exist.
    const methods = ([] as string[]).concat(route.method).filter((method) => method !== 'OPTIONS')
    if (methods.length > 0) routes.push({ pattern: pathPattern(route.url), methods })
  })
  return (path) => [...new Set(routes.filter((route) => route.pattern.test(path)).flatMap((route) => route.methods))].sort()
}

/**
 * `/orgs/:orgId/users` matches `/orgs/a/users`; `*` matches the rest. Not with
 * a trailing slash: the router does not serve one, so that path is a 404.
 */
function pathPattern(url: string): RegExp {
  const source = url
    .split('/')
    .map((part) => (part.startsWith(':') ? '[^/]+' : part === '*' ? '.*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/')
  return new RegExp(`^${source}$`)
}
