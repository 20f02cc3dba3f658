// JWT verification and minting. HS256 with AUTH_JWT_SECRET, RS256/ES256 from
// AUTH_JWKS_URL; algorithms are pinned, so `alg: none` and algorithm
// confusion are refused by construction. A TokenError is the token's fault
// (401); a KeysUnavailableError is the identity provider's (503).
import { createSecretKey } from 'node:crypto'
import { jwtVerify, SignJWT, type JWTPayload } from 'jose'
import { readCompact, verifyHs256 } from './hs256.ts'
import { KeysUnavailableError, remoteKeySet } from './jwks.ts'
import { isRole, type Principal, type Role } from './principal.ts'

export interface VerifierOptions {
  secret?: string
  jwksUrl?: string
  issuer?: string
  audience?: string
}

export class TokenError extends Error {}

export type Verifier = (token: string) => Promise<Principal>

/** Verified tokens remembered (until they expire) so a client's every batch does not pay for a signature check. */
const VERIFIED_CACHE_SIZE = 10000

export function createVerifier(options: VerifierOptions): Verifier {
  const verify = createSignatureVerifier(options)
  const verified = new Map<string, { principal: Principal; expiresAt: number }>()
  return async (token) => {
    const hit = verified.get(token)
    if (hit && hit.expiresAt > Date.now()) return hit.principal
    if (hit) verified.delete(token)
    const { principal, expiresAt } = await verify(token)
    if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!)
    verified.set(token, { principal, expiresAt })
    return principal
  }
}

function createSignatureVerifier(options: VerifierOptions): (token: string) => Promise<{ principal: Principal; expiresAt: number }> {
  // A KeyObject made once, rather than raw bytes imported again on every call.
  const secret = options.secret ? createSecretKey(Buffer.from(options.secret)) : undefined
  const jwks = options.jwksUrl ? remoteKeySet(options.jwksUrl) : undefined
  const claimChecks = {
    ...(options.issuer ? { issuer: options.issuer } : {}),
    ...(options.audience ? { audience: options.audience } : {}),
  }
  return async (token) => {
    let payload: JWTPayload
    try {
      const compact = readCompact(token)
      const alg = compact.header.alg
      if (alg === 'HS256' && secret) {
        payload = verifyHs256(compact, secret, claimChecks)
      } else if ((alg === 'RS256' || alg === 'ES256') && jwks) {
        ;({ payload } = await jwtVerify(token, jwks, { algorithms: ['RS256', 'ES256'], ...claimChecks }))
      } else {
        throw new TokenError(`algorithm ${String(alg)} is not accepted`)
      }
    } catch (error) {
      if (error instanceof TokenError || error instanceof KeysUnavailableError) throw error
      throw new TokenError(describe(error))
    }
    // Both verifiers check exp only when it is there; a token without one
    // would be good for ever, which no identity provider intends.
    if (payload.exp === undefined) throw new TokenError('token has no exp claim: tokens must expire')
    return { principal: toPrincipal(payload), expiresAt: payload.exp * 1000 }
  }
}

function describe(error: unknown): string {
  const code = (error as { code?: string }).code
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'token has expired'
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'token signature is invalid'
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `token claim check failed: ${(error as Error).message}`
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return "token key id (kid) is unknown: the identity provider's key set has no matching key"
    default:
      return 'token is malformed or cannot be verified'
  }
}

/** The caller a verified token's claims name, or TokenError saying what the API refuses. */
export function toPrincipal(payload: JWTPayload): Principal {
  const role = payload.role === undefined ? 'learner' : payload.role // a null role is no role of ours: refused
  if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 128) {
    throw new TokenError('token has no usable sub claim')
  }
  if (!isRole(role)) throw new TokenError(`token role ${JSON.stringify(role)} is not one of learner, instructor, admin, service`)
  const orgId = payload.org_id
  if (orgId !== undefined && (typeof orgId !== 'string' || orgId.length === 0 || orgId.length > 128)) {
    throw new TokenError('token org_id claim is not a string')
  }
  if (role !== 'learner' && orgId === undefined) throw new TokenError(`${role === 'service' ? 'a' : 'an'} ${role} token needs an org_id claim`)
  return { userId: payload.sub, role, ...(orgId !== undefined ? { orgId } : {}) }
}

export interface MintOptions {
  userId: string
  orgId?: string
  role?: Role
  /** Seconds, or a jose time span such as '1h'. */
  ttl?: number | string
  issuer?: string
  audience?: string
}

/** The issuer and audience the API checks (AUTH_ISSUER, AUTH_AUDIENCE): for the verifier, and for tokens minted to pass it. */
export function checkedClaims(config: { AUTH_ISSUER?: string | undefined; AUTH_AUDIENCE?: string | undefined }): Pick<MintOptions, 'issuer' | 'audience'> {
  return {
    ...(config.AUTH_ISSUER ? { issuer: config.AUTH_ISSUER } : {}),
    ...(config.AUTH_AUDIENCE ? { audience: config.AUTH_AUDIENCE } : {}),
  }
}

export async function mintToken(secret: string, options: MintOptions): Promise<string> {
  const jwt = new SignJWT({ ...(options.orgId ? { org_id: options.orgId } : {}), role: options.role ?? 'learner' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.userId)
    .setIssuedAt()
    .setExpirationTime(typeof options.ttl === 'number' ? Math.floor(Date.now() / 1000) + options.ttl : (options.ttl ?? '1h'))
  if (options.issuer) jwt.setIssuer(options.issuer)
  if (options.audience) jwt.setAudience(options.audience)
  return jwt.sign(new TextEncoder().encode(secret))
}
