// The identity provider's key set (AUTH_JWKS_URL), fetched and cached by jose,
// with its failures told apart from bad tokens: a key set that cannot be
// fetched or read is the provider's outage (503, which the SDK retries, so no
// event is lost), while a kid missing from a key set that was fetched is the
// token's fault (401). docs/deploy.md describes the timings for operators.
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose'

/** A hanging provider costs a request this long, then 503, as an unreachable database does (docs/edge.md). jose's default is 5 s. */
export const JWKS_TIMEOUT_MS = 2000

/**
 * After a successful fetch, an unknown kid fetches the key set again only once
 * this has passed (jose's default is 30 s): a key the provider has just rotated
 * in is accepted within 5 s, and tokens with made-up kids cost the provider at
 * most one fetch per 5 s.
 */
export const JWKS_COOLDOWN_MS = 5000

/** The key set could not be fetched, or holds no keys: no token can be checked, whether good or bad. */
export class KeysUnavailableError extends Error {}

// jose's errors for a lookup in a key set it holds. Everything else its key
// getter throws comes from fetching the set (timeout, refused connection,
// status other than 200, a body that is not JSON or not a JWKS) or from a key
// in it that cannot be imported: the provider's fault either way.
const LOOKUP_ERRORS = new Set(['ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWKS_MULTIPLE_MATCHING_KEYS'])

export function remoteKeySet(url: string): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(url), { timeoutDuration: JWKS_TIMEOUT_MS, cooldownDuration: JWKS_COOLDOWN_MS })
  return async (header, token) => {
    try {
      return await remote(header, token)
    } catch (error) {
      if (!LOOKUP_ERRORS.has(String((error as { code?: unknown }).code))) {
        throw new KeysUnavailableError(`identity provider keys could not be fetched from ${url}`, { cause: error })
      }
      // An empty set is valid JSON Web Key Set syntax, but it is the provider's
      // misconfiguration, not every token's fault.
      if (remote.jwks()?.keys.length === 0) throw new KeysUnavailableError(`identity provider key set at ${url} is empty`, { cause: error })
      throw error
    }
  }
}
