// HS256 tokens verified with node:crypto, synchronously. jose verifies them
// through WebCrypto, whose asynchronous job took 131 to 159 us of CPU per
// token here against 12 to 21 us this way (docs/performance.md, "Token checks").
// The verifier caches what it verified, but a restarted API, a new hour of
// tokens, or more active learners than the cache holds verify on every request.
//
// The checks are jose's jwtVerify with these options (test/auth/hs256.test.ts
// runs both on the same tokens, and the checks run in jose's order, so a
// token is refused for the same reason; the header is read first, for the
// verifier to route by alg, and a fault there or in the segment count is
// 'malformed' either way): three base64url segments, a header
// and a claims set that are JSON objects, alg exactly HS256, the signature
// compared in constant time, exp/nbf/iat numbers if present, exp after now, nbf not
// after now, iss and aud when configured. One deliberate difference: any
// `crit` or `b64` header is refused (jose accepts `crit: ["b64"]` with
// `b64: true`); no identity provider sends them on an HS256 token.
import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto'
import type { JWTPayload } from 'jose'

export interface ClaimChecks {
  issuer?: string
  audience?: string
}

/** Carries jose's error codes, so that one place turns both into messages. */
export class Hs256Error extends Error {
  readonly code: 'ERR_JWS_INVALID' | 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' | 'ERR_JWT_EXPIRED' | 'ERR_JWT_CLAIM_VALIDATION_FAILED'
  constructor(code: Hs256Error['code'], message: string) {
    super(message)
    this.code = code
  }
}

const SIGNATURE_BYTES = 32
const ASCII = /^[\x00-\x7f]*$/
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A token split at its dots with its header decoded, once: what routing by `alg` reads and verifyHs256 checks. */
export interface CompactToken {
  header: Record<string, unknown>
  parts: string[]
}

export function readCompact(token: string): CompactToken {
  const parts = token.split('.')
  return { header: decodeObject(parts[0]!), parts }
}

export function verifyHs256(token: CompactToken, key: KeyObject, checks: ClaimChecks = {}, nowMs = Date.now()): JWTPayload {
  if (token.parts.length !== 3) throw new Hs256Error('ERR_JWS_INVALID', 'not a compact JWS')
  const [header, payload, signature] = token.parts as [string, string, string]

  if ('crit' in token.header || 'b64' in token.header) throw new Hs256Error('ERR_JWS_INVALID', 'crit and b64 are not supported')
  if (token.header.alg !== 'HS256') throw new Hs256Error('ERR_JWS_INVALID', 'alg is not HS256')
  if (!ASCII.test(payload)) throw new Hs256Error('ERR_JWS_INVALID', 'payload is not ASCII')

  const expected = createHmac('sha256', key).update(`${header}.${payload}`).digest()
  const given = decodeBase64url(signature)
  if (given.length !== SIGNATURE_BYTES || !timingSafeEqual(given, expected)) {
    throw new Hs256Error('ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'signature verification failed')
  }

  const claims = decodeObject(payload) as JWTPayload
  checkClaims(claims, checks, Math.floor(nowMs / 1000))
  return claims
}

/** jose's decoding on Node 24 (atob, forgiving of padding, strict about the alphabet and a length of 4n+1). */
function decodeBase64url(segment: string): Buffer {
  if (segment.includes('+') || segment.includes('/')) throw notBase64url()
  try {
    return Buffer.from(atob(segment.replaceAll('-', '+').replaceAll('_', '/')), 'latin1')
  } catch {
    throw notBase64url()
  }
}

const notBase64url = () => new Hs256Error('ERR_JWS_INVALID', 'segment is not base64url')

function decodeObject(segment: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(utf8.decode(decodeBase64url(segment)))
  } catch {
    throw new Hs256Error('ERR_JWS_INVALID', 'segment is not base64url JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Hs256Error('ERR_JWS_INVALID', 'segment is not a JSON object')
  return value as Record<string, unknown>
}

function checkClaims(claims: JWTPayload, checks: ClaimChecks, now: number): void {
  const fail = (message: string) => new Hs256Error('ERR_JWT_CLAIM_VALIDATION_FAILED', message)
  if (checks.issuer !== undefined && claims.iss !== checks.issuer) throw fail('unexpected "iss" claim value')
  if (checks.audience !== undefined) {
    const audiences = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : []
    if (!audiences.includes(checks.audience)) throw fail('unexpected "aud" claim value')
  }
  // In jose's order (it decides which message a token with several faults gets): iat, nbf, exp.
  const numeric = (name: 'iat' | 'nbf' | 'exp') => {
    if (claims[name] !== undefined && typeof claims[name] !== 'number') throw fail(`"${name}" claim must be a number`)
    return claims[name]
  }
  numeric('iat')
  const nbf = numeric('nbf')
  if (nbf !== undefined && nbf > now) throw fail('"nbf" claim timestamp check failed')
  const exp = numeric('exp')
  if (exp !== undefined && exp <= now) throw new Hs256Error('ERR_JWT_EXPIRED', '"exp" claim timestamp check failed')
}
